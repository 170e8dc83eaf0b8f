// Building the page from data. Everything shown comes from clients (model names, keys, errors), so
// it only ever becomes text nodes and properties: never markup.

export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node[name] = value; // properties (title, value, max...), never innerHTML
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

const whole = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

export function count(n) {
  return n === null || n === undefined ? "–" : whole.format(n);
}

export function compact(n) {
  if (n === null || n === undefined) return "–";
  const abs = Math.abs(n);
  if (abs >= 1e9) return (n / 1e9).toFixed(abs >= 1e10 ? 0 : 1) + "G";
  if (abs >= 1e6) return (n / 1e6).toFixed(abs >= 1e7 ? 0 : 1) + "M";
  if (abs >= 1e3) return (n / 1e3).toFixed(abs >= 1e4 ? 0 : 1) + "k";
  return whole.format(n);
}

export function ms(value) {
  if (value === null || value === undefined) return "–";
  return value >= 10000 ? (value / 1000).toFixed(1) + " s" : whole.format(value) + " ms";
}

export function usd(value) {
  if (value === null || value === undefined) return "–";
  if (value === 0) return "$0";
  return value < 0.01 ? "$" + value.toPrecision(2) : "$" + value.toFixed(2);
}

export function percent(ratio) {
  return ratio === null || ratio === undefined ? "–" : (ratio * 100).toFixed(ratio < 0.1 ? 1 : 0) + "%";
}

export function clock(epoch) {
  return new Date(epoch * 1000).toLocaleTimeString();
}

// epoch seconds, or an ISO date, as milliseconds
export function when(value) {
  return typeof value === "number" ? value * 1000 : Date.parse(value);
}

export function moment(value) {
  const t = when(value);
  return Number.isNaN(t) ? String(value) : new Date(t).toLocaleString();
}

export function none(label = "(none)") {
  return h("span", { class: "muted" }, label);
}
