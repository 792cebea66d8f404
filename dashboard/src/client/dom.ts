/**
 * Tiny DOM helpers. Device data (machine ids, payloads, reasons) only ever
 * reaches the page through text nodes and `textContent`: there is no
 * `innerHTML` anywhere in the client.
 */

type Child = Node | string | null | undefined;

/** Creates an element with a class and children (strings become text nodes). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  cls?: string,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (cls !== undefined && cls !== '') el.className = cls;
  for (const c of children)
    if (c !== null && c !== undefined) el.append(typeof c === 'string' ? document.createTextNode(c) : c);
  return el;
}

/** The element with this id, or a clear error when the page and the script disagree. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`dashboard page has no #${id}`);
  return el as T;
}

/** A text node that is only written when its value changes. */
export class Slot {
  readonly node: Text;
  constructor(initial = '') {
    this.node = document.createTextNode(initial);
  }
  set(value: string): void {
    if (this.node.data !== value) this.node.data = value;
  }
}

/** A table cell holding one {@link Slot}. */
export function cell(slot: Slot, cls?: string): HTMLTableCellElement {
  return h('td', cls, slot.node);
}

/** Sets `textContent` only when it changes. */
export function setText(el: HTMLElement, value: string): void {
  if (el.textContent !== value) el.textContent = value;
}

/** Toggles a class only when needed. */
export function setClass(el: Element, cls: string, on: boolean): void {
  if (el.classList.contains(cls) !== on) el.classList.toggle(cls, on);
}

/** Replaces the element's class list only when it changes. */
export function setClassName(el: Element, value: string): void {
  if (el.className !== value) el.className = value;
}

/** Sets a title (tooltip) only when it changes. */
export function setTitle(el: HTMLElement, value: string): void {
  if (el.title !== value) el.title = value;
}

/** Sets a width in percent through the CSSOM (allowed by the CSP, unlike style attributes). */
export function setWidthPct(el: HTMLElement, fraction: number): void {
  const v = `${Math.max(0, Math.min(100, fraction * 100)).toFixed(1)}%`;
  if (el.style.width !== v) el.style.width = v;
}

/**
 * Places a segment of a stacked bar at [start, start + fraction) of its track
 * with a transform, which needs no layout (no layout shift, compositor only).
 */
export function setSegment(el: HTMLElement, start: number, fraction: number): void {
  const clamp = (x: number): number => Math.max(0, Math.min(1, x));
  const v = `translateX(${(clamp(start) * 100).toFixed(1)}%) scaleX(${clamp(fraction).toFixed(3)})`;
  if (el.style.transform !== v) el.style.transform = v;
}

/** Shows or hides an element. */
export function show(el: HTMLElement, visible: boolean): void {
  if (el.hidden === visible) el.hidden = !visible;
}

/**
 * Rows of a table keyed by id and kept in a given order, updated in place:
 * new keys get a row (built once), gone keys lose theirs, rows are only moved
 * when the order changes.
 */
export class KeyedRows<T, R extends { el: HTMLTableRowElement; update(item: T): void }> {
  private readonly rows = new Map<string, R>();

  constructor(
    private readonly tbody: HTMLElement,
    private readonly key: (item: T) => string,
    private readonly create: (item: T) => R,
  ) {}

  /** Makes the table show exactly `items`, in that order. */
  sync(items: readonly T[]): void {
    const keep = new Set<string>();
    let prev: HTMLTableRowElement | null = null;
    for (const item of items) {
      const k = this.key(item);
      keep.add(k);
      let row = this.rows.get(k);
      if (row === undefined) {
        row = this.create(item);
        this.rows.set(k, row);
      }
      row.update(item);
      const want: ChildNode | null = prev === null ? this.tbody.firstChild : prev.nextSibling;
      if (want !== row.el) this.tbody.insertBefore(row.el, want);
      prev = row.el;
    }
    for (const [k, row] of this.rows) {
      if (!keep.has(k)) {
        row.el.remove();
        this.rows.delete(k);
      }
    }
  }

  forEach(fn: (row: R) => void): void {
    for (const row of this.rows.values()) fn(row);
  }

  get size(): number {
    return this.rows.size;
  }
}
