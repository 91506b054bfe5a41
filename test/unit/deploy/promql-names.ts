/**
 * The metric names a PromQL expression selects, read with a small tokenizer: enough for the expressions in
 * deploy/ (selectors, functions, aggregations with by/without, binary operators with on/ignoring/group_*,
 * ranges, offsets, strings), not a full parser. `promtool check rules` checks the syntax separately.
 */

/** Grafana's interval variables, replaced by a duration before PromQL sees the expression. */
const GRAFANA_INTERVALS = /\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}/g;

/** The expression Prometheus would run for a Grafana query: interval variables become `5m`. */
export function withoutGrafanaVariables(expr: string): string {
  return expr.replace(GRAFANA_INTERVALS, '5m');
}

const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'inf',
  'nan',
  'start',
  'end',
  'atan2',
]);
/** Aggregation operators can be followed by `by (...)` instead of `(`, so they are known by name. */
const AGGREGATIONS = new Set([
  'sum',
  'min',
  'max',
  'avg',
  'group',
  'stddev',
  'stdvar',
  'count',
  'count_values',
  'bottomk',
  'topk',
  'quantile',
  'limitk',
  'limit_ratio',
]);
/** Keywords followed by a parenthesised list of label names. */
const LABEL_LIST_BEFORE = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

type Token = { kind: 'ident' | 'string' | 'number' | 'punct'; text: string };

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < expr.length) {
    const c = expr[i]!;
    if (/\s/.test(c)) {
      i += 1;
    } else if (c === '#') {
      while (i < expr.length && expr[i] !== '\n') i += 1;
    } else if (c === '"' || c === "'" || c === '`') {
      let j = i + 1;
      while (j < expr.length && expr[j] !== c) j += expr[j] === '\\' && c !== '`' ? 2 : 1;
      tokens.push({ kind: 'string', text: expr.slice(i + 1, j) });
      i = j + 1;
    } else if (/[0-9.]/.test(c)) {
      const m = /^(?:0x[0-9a-f]+|[0-9.]+(?:e[+-]?[0-9]+)?(?:[a-z]+[0-9.]*)*)/i.exec(expr.slice(i))!;
      tokens.push({ kind: 'number', text: m[0] });
      i += Math.max(1, m[0].length);
    } else if (/[a-zA-Z_:]/.test(c)) {
      const m = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(expr.slice(i))!;
      tokens.push({ kind: 'ident', text: m[0] });
      i += m[0].length;
    } else {
      tokens.push({ kind: 'punct', text: c });
      i += 1;
    }
  }
  return tokens;
}

/** Metric names selected by `expr` (after {@link withoutGrafanaVariables}), each once, in order of appearance. */
export function metricNamesIn(expr: string): string[] {
  const tokens = tokenize(withoutGrafanaVariables(expr));
  const names: string[] = [];
  let braces = 0;
  let brackets = 0;
  for (let i = 0; i < tokens.length; i += 1) {
    const t = tokens[i]!;
    if (t.kind === 'punct') {
      if (t.text === '{') braces += 1;
      else if (t.text === '}') braces -= 1;
      else if (t.text === '[') brackets += 1;
      else if (t.text === ']') brackets -= 1;
      continue;
    }
    if (braces > 0) {
      // Inside a selector only `__name__="x"` names a metric.
      if (
        t.kind === 'ident' &&
        t.text === '__name__' &&
        tokens[i + 1]?.text === '=' &&
        tokens[i + 2]?.text !== '~'
      ) {
        const value = tokens[i + 2];
        if (value?.kind === 'string') names.push(value.text);
      }
      continue;
    }
    if (t.kind !== 'ident' || brackets > 0) continue;
    const next = tokens[i + 1];
    if (KEYWORDS.has(t.text.toLowerCase())) {
      if (LABEL_LIST_BEFORE.has(t.text.toLowerCase()) && next?.text === '(') {
        while (i < tokens.length && tokens[i]!.text !== ')') i += 1;
      }
      continue;
    }
    if (AGGREGATIONS.has(t.text) || next?.text === '(') continue;
    names.push(t.text);
  }
  return [...new Set(names)];
}

/** The metric of a Grafana `label_values(metric, label)` or `label_values(label)` query, else the PromQL names. */
export function metricNamesInVariableQuery(query: string): string[] {
  const m =
    /^\s*label_values\(\s*(?:([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s*,\s*)?[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$/.exec(
      query,
    );
  if (m) return m[1] === undefined ? [] : metricNamesIn(m[1]);
  return metricNamesIn(query);
}
