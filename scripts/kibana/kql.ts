/**
 * KQL (Kibana Query Language) → Elasticsearch query DSL, for the subset the
 * saved objects in k8s/kibana/driftline-kibana.ndjson use, translated the way
 * Kibana's own `toElasticsearchQuery` (@kbn/es-query) does for fields without
 * nesting:
 *
 *   a or b            { bool: { should: [a, b], minimum_should_match: 1 } }
 *   a and b           { bool: { filter: [a, b] } }
 *   not a             { bool: { must_not: a } }
 *   f : "v"           { match_phrase: { f: "v" } }
 *   f : v             { match: { f: "v" } }
 *   f : v*            { query_string: { fields: [f], query: "v*" } }  (other Lucene specials escaped)
 *   f : *             { exists: { field: f } }
 *   f : (v1 or v2)    the same, per value, combined with or/and/not inside the parentheses
 *   f < v, <=, >, >=  { range: { f: { lt|lte|gt|gte: v } } }
 *
 * Keywords are case-insensitive; quoted values take \" and \\ escapes; `\` escapes
 * a special character in an unquoted value. A query without a field (free text)
 * and nested-field syntax (`f:{ … }`) are refused with an error: the saved
 * searches use neither.
 *
 * Why not hand the KQL to Elasticsearch's `query_string`: that is Lucene syntax,
 * not KQL. There `or`/`and`/`not` in lower case are ordinary words (searched in
 * every field, and with the default OR operator they widen the result),
 * `field : value` with spaces around the colon is not a field query, and
 * `(a or b)` after a field means something else. The translations differ on
 * exactly the queries the saved searches use.
 */

export type EsQuery = Record<string, unknown>;

type Token =
  | { t: 'lparen' | 'rparen' | 'colon' | 'or' | 'and' | 'not' | 'eof'; pos: number }
  | { t: 'range'; op: '<' | '<=' | '>' | '>='; pos: number }
  | { t: 'word'; value: string; quoted: boolean; wildcard: boolean; pos: number };

export class KqlError extends Error {}

const SPECIAL = new Set(['(', ')', ':', '<', '>', '"', '{', '}', '\\']);

function tokenize(query: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < query.length) {
    const c = query.charAt(i);
    if (/\s/.test(c)) {
      i += 1;
      continue;
    }
    const pos = i;
    if (c === '(' || c === ')') {
      out.push({ t: c === '(' ? 'lparen' : 'rparen', pos });
      i += 1;
    } else if (c === ':') {
      out.push({ t: 'colon', pos });
      i += 1;
    } else if (c === '<' || c === '>') {
      const op = query.charAt(i + 1) === '=' ? (`${c}=` as '<=' | '>=') : (c as '<' | '>');
      out.push({ t: 'range', op, pos });
      i += op.length;
    } else if (c === '{' || c === '}') {
      throw new KqlError(`nested field queries ({ … }) are not supported (at ${pos})`);
    } else if (c === '"') {
      let value = '';
      i += 1;
      for (;;) {
        if (i >= query.length) throw new KqlError(`unterminated quoted value (from ${pos})`);
        const d = query.charAt(i);
        if (d === '\\' && i + 1 < query.length) {
          value += query.charAt(i + 1);
          i += 2;
        } else if (d === '"') {
          i += 1;
          break;
        } else {
          value += d;
          i += 1;
        }
      }
      out.push({ t: 'word', value, quoted: true, wildcard: false, pos });
    } else {
      // An unquoted literal: up to whitespace or a special character; `\x` keeps x literally.
      let value = '';
      let wildcard = false;
      let raw = '';
      while (i < query.length) {
        const d = query.charAt(i);
        if (/\s/.test(d) || (SPECIAL.has(d) && d !== '\\')) break;
        if (d === '\\') {
          if (i + 1 >= query.length) throw new KqlError(`dangling \\ at ${i}`);
          value += query.charAt(i + 1);
          raw += `\\${query.charAt(i + 1)}`;
          i += 2;
          continue;
        }
        if (d === '*') wildcard = true;
        value += d;
        raw += d;
        i += 1;
      }
      const lower = raw.toLowerCase();
      if (lower === 'or' || lower === 'and' || lower === 'not') out.push({ t: lower, pos });
      else out.push({ t: 'word', value: wildcard ? raw : value, quoted: false, wildcard, pos });
    }
  }
  out.push({ t: 'eof', pos: query.length });
  return out;
}

/** Escapes Lucene's query_string specials except `*` (the wildcard) in an unquoted KQL value. */
function toQueryStringWildcard(raw: string): string {
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charAt(i);
    if (c === '\\') {
      // An escaped character from the KQL text: literal, so escape it for Lucene too.
      out += `\\${raw.charAt(i + 1)}`;
      i += 1;
    } else if (c === '*') out += '*';
    else if ('+-=&|><!(){}[]^"~?:/ '.includes(c)) out += `\\${c}`;
    else out += c;
  }
  return out;
}

class Parser {
  private i = 0;
  constructor(
    private readonly tokens: Token[],
    private readonly query: string,
  ) {}

  private peek(): Token {
    return this.tokens[this.i] as Token;
  }
  private next(): Token {
    const t = this.peek();
    this.i += 1;
    return t;
  }
  private expect(type: Token['t']): Token {
    const t = this.next();
    if (t.t !== type)
      throw new KqlError(`expected ${type} at ${t.pos} in ${JSON.stringify(this.query)}, found ${t.t}`);
    return t;
  }

  parse(): EsQuery {
    if (this.peek().t === 'eof') return { match_all: {} };
    const q = this.or();
    this.expect('eof');
    return q;
  }

  private or(): EsQuery {
    const parts = [this.and()];
    while (this.peek().t === 'or') {
      this.next();
      parts.push(this.and());
    }
    return parts.length === 1 ? (parts[0] as EsQuery) : { bool: { should: parts, minimum_should_match: 1 } };
  }

  private and(): EsQuery {
    const parts = [this.not()];
    while (this.peek().t === 'and') {
      this.next();
      parts.push(this.not());
    }
    return parts.length === 1 ? (parts[0] as EsQuery) : { bool: { filter: parts } };
  }

  private not(): EsQuery {
    if (this.peek().t === 'not') {
      this.next();
      return { bool: { must_not: this.sub() } };
    }
    return this.sub();
  }

  private sub(): EsQuery {
    if (this.peek().t === 'lparen') {
      this.next();
      const q = this.or();
      this.expect('rparen');
      return q;
    }
    return this.expression();
  }

  private expression(): EsQuery {
    const field = this.next();
    if (field.t !== 'word')
      throw new KqlError(`expected a field name at ${field.pos} in ${JSON.stringify(this.query)}`);
    const op = this.peek();
    if (op.t === 'range') {
      this.next();
      const v = this.next();
      if (v.t !== 'word') throw new KqlError(`expected a value after ${op.op} at ${v.pos}`);
      const key = { '<': 'lt', '<=': 'lte', '>': 'gt', '>=': 'gte' }[op.op];
      return { range: { [field.value]: { [key]: v.value } } };
    }
    if (op.t !== 'colon')
      throw new KqlError(
        `free-text queries (a value without "field :") are not supported: ${JSON.stringify(field.value)} at ${field.pos}`,
      );
    this.next();
    return this.valueExpression(field.value);
  }

  private valueExpression(field: string): EsQuery {
    if (this.peek().t === 'lparen') {
      this.next();
      const q = this.valueOr(field);
      this.expect('rparen');
      return q;
    }
    return this.value(field);
  }

  private valueOr(field: string): EsQuery {
    const parts = [this.valueAnd(field)];
    while (this.peek().t === 'or') {
      this.next();
      parts.push(this.valueAnd(field));
    }
    return parts.length === 1 ? (parts[0] as EsQuery) : { bool: { should: parts, minimum_should_match: 1 } };
  }

  private valueAnd(field: string): EsQuery {
    const parts = [this.valueNot(field)];
    while (this.peek().t === 'and') {
      this.next();
      parts.push(this.valueNot(field));
    }
    return parts.length === 1 ? (parts[0] as EsQuery) : { bool: { filter: parts } };
  }

  private valueNot(field: string): EsQuery {
    if (this.peek().t === 'not') {
      this.next();
      return { bool: { must_not: this.valueList(field) } };
    }
    return this.valueList(field);
  }

  private valueList(field: string): EsQuery {
    if (this.peek().t === 'lparen') {
      this.next();
      const q = this.valueOr(field);
      this.expect('rparen');
      return q;
    }
    return this.value(field);
  }

  private value(field: string): EsQuery {
    const v = this.next();
    if (v.t !== 'word')
      throw new KqlError(`expected a value for ${field} at ${v.pos} in ${JSON.stringify(this.query)}`);
    if (v.quoted) return { match_phrase: { [field]: v.value } };
    if (v.value === '*') return { exists: { field } };
    if (v.wildcard) return { query_string: { fields: [field], query: toQueryStringWildcard(v.value) } };
    return { match: { [field]: v.value } };
  }
}

/** Translates a KQL query (the supported subset, see the module comment) to an Elasticsearch query. */
export function kqlToEs(query: string): EsQuery {
  return new Parser(tokenize(query), query).parse();
}
