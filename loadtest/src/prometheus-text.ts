/** One sample of a Prometheus text page: `name{label="value",...} value`. */
export interface PrometheusSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const labelPattern = /([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/**
 * The samples of a Prometheus text page (version 0.0.4), comments and blank lines skipped. A value
 * that is not a number (`NaN`, a malformed line) is read as NaN; a timestamp after it is ignored.
 */
export function parsePrometheusText(text: string): PrometheusSample[] {
  const samples: PrometheusSample[] = [];
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const brace = line.indexOf('{');
    const space = line.indexOf(' ');
    let name: string;
    let labels: Record<string, string> = {};
    let rest: string;
    if (brace !== -1 && (space === -1 || brace < space)) {
      const close = line.lastIndexOf('}');
      if (close < brace) continue;
      name = line.slice(0, brace);
      labels = parseLabels(line.slice(brace + 1, close));
      rest = line.slice(close + 1).trim();
    } else {
      if (space === -1) continue;
      name = line.slice(0, space);
      rest = line.slice(space + 1).trim();
    }
    const valueText = rest.split(/\s+/)[0] ?? '';
    samples.push({ name, labels, value: valueText === '' ? Number.NaN : Number(valueText) });
  }
  return samples;
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const match of text.matchAll(labelPattern)) {
    const [, key, value] = match;
    if (key !== undefined && value !== undefined) labels[key] = value.replace(/\\(.)/g, unescapeLabel);
  }
  return labels;
}

function unescapeLabel(_whole: string, character: string): string {
  return character === 'n' ? '\n' : character;
}

/**
 * The sum of every sample of `name` (whatever its labels: a node labels its replicas' metrics by
 * group, and the sum is the node's), optionally only those whose labels pass `where`. Non-numeric
 * values count as 0.
 */
export function metricSum(
  samples: readonly PrometheusSample[],
  name: string,
  where: (labels: Readonly<Record<string, string>>) => boolean = () => true,
): number {
  let sum = 0;
  for (const sample of samples) {
    if (sample.name !== name || !where(sample.labels)) continue;
    if (Number.isFinite(sample.value)) sum += sample.value;
  }
  return sum;
}
