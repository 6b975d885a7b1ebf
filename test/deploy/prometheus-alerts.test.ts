import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse } from 'yaml';
import { Registry, createLogger, loadClusterConfig } from '@impulse/common';
import { Gateway, parseGatewayConfig } from '@impulse/gateway';
import { ShardNode, parseShardNodeConfig } from '@impulse/shard-node';

/**
 * deploy/prometheus/impulse-alerts.yml checked against the code: every rule has what an operator
 * needs (severity, summary, a description that points at a docs section that exists), and every
 * metric and label its expressions name is one that a real shard-node and gateway export. The
 * exported names come from the registries of the two processes, started here in this process, so a
 * renamed metric or label fails this test rather than silently blinding an alert. What the rules
 * do with the series is tested by `promtool test rules` (`npm run test:alerts`).
 */

const repositoryRoot = new URL('../../', import.meta.url);
const readRepositoryFile = (path: string): string => readFileSync(new URL(path, repositoryRoot), 'utf8');

const rulesPath = 'deploy/prometheus/impulse-alerts.yml';
const scrapeConfigPath = 'deploy/prometheus/prometheus.yml';
const severities = ['page', 'ticket'];

interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  readonly for: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
}

/** The fields of a prom-client metric read here; its declared type hides them behind `MetricObject`. */
interface RegisteredMetric {
  readonly name: string;
  readonly type: 'counter' | 'gauge' | 'histogram' | 'summary';
  readonly labelNames: readonly string[];
}

/** The labels Prometheus adds to every scraped series (from the scrape configuration). */
const targetLabels = ['job', 'instance'];

/**
 * The series names a metric is scraped as, each with the labels its samples carry: a histogram is
 * `_bucket` (with `le`), `_sum` and `_count`; a summary is itself (with `quantile`), `_sum` and
 * `_count`. prom-client adds no suffix to counters: their names end in `_total` in the code.
 */
function seriesOf(metric: RegisteredMetric, labels: readonly string[]): [string, Set<string>][] {
  const all = [...labels, ...metric.labelNames];
  switch (metric.type) {
    case 'histogram':
      return [
        [`${metric.name}_bucket`, new Set([...all, 'le'])],
        [`${metric.name}_sum`, new Set(all)],
        [`${metric.name}_count`, new Set(all)],
      ];
    case 'summary':
      return [
        [metric.name, new Set([...all, 'quantile'])],
        [`${metric.name}_sum`, new Set(all)],
        [`${metric.name}_count`, new Set(all)],
      ];
    default:
      return [[metric.name, new Set(all)]];
  }
}

/** The anchors GitHub gives the headings of a Markdown file (outside code blocks). */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  let inCode = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) inCode = !inCode;
    const heading = inCode ? null : /^#{1,6}\s+(.+?)\s*#*\s*$/.exec(line);
    if (heading === null) continue;
    const slug = (heading[1] ?? '')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    let anchor = slug;
    for (let duplicate = 1; anchors.has(anchor); duplicate++) anchor = `${slug}-${duplicate}`;
    anchors.add(anchor);
  }
  return anchors;
}

const rules: AlertRule[] = (
  parse(readRepositoryFile(rulesPath)) as { groups: { name: string; rules: AlertRule[] }[] }
).groups.flatMap((group) => group.rules);

describe(`${rulesPath}`, () => {
  /**
   * Every series the two processes export, with its labels, and `up`, which Prometheus makes
   * itself for each target.
   */
  const exported = new Map<string, Set<string>>([['up', new Set(targetLabels)]]);
  let directory: string;
  let shardNode: ShardNode | undefined;
  let gateway: Gateway | undefined;

  beforeAll(async () => {
    // Every registry a process fills is made by createMetricsRegistry, which gives it its default
    // labels (service, group, replica): watching that call finds each registry and those labels.
    const setDefaultLabels = vi.spyOn(Registry.prototype, 'setDefaultLabels');
    try {
      directory = await mkdtemp(join(tmpdir(), 'impulse-alert-rules-'));
      const shardNodeConfig = parseShardNodeConfig({
        argv: ['--port=0', '--engine=memory', `--data-dir=${directory}`, '--bootstrap', '--log-level=silent'],
        env: {},
      });
      shardNode = await ShardNode.start(
        shardNodeConfig,
        createLogger({ service: 'shard-node', level: 'silent' }),
      );
      const cluster = loadClusterConfig({
        json: JSON.stringify({
          epoch: 1,
          groups: [
            {
              id: 'g1',
              replicas: [{ id: 'g1-r1', url: `http://127.0.0.1:${shardNode.port}`, raftId: 1 }],
            },
          ],
        }),
      });
      const gatewayConfig = parseGatewayConfig({ argv: ['--port=0', '--log-level=silent'], env: {} });
      gateway = await Gateway.start(
        gatewayConfig,
        cluster,
        createLogger({ service: 'gateway', level: 'silent' }),
      );
      const services = new Set<string>();
      setDefaultLabels.mock.contexts.forEach((context, call) => {
        const registry = context as Registry;
        const defaultLabels = (setDefaultLabels.mock.calls[call]?.[0] ?? {}) as Record<string, string>;
        services.add(String(defaultLabels['service']));
        const labels = [...targetLabels, ...Object.keys(defaultLabels)];
        for (const metric of registry.getMetricsAsArray() as unknown as RegisteredMetric[]) {
          for (const [series, seriesLabels] of seriesOf(metric, labels)) {
            exported.set(series, new Set([...(exported.get(series) ?? []), ...seriesLabels]));
          }
        }
      });
      expect([...services].sort()).toEqual(['gateway', 'shard-node']);
    } finally {
      setDefaultLabels.mockRestore();
    }
  });

  afterAll(async () => {
    await gateway?.stop();
    await shardNode?.stop();
    await rm(directory, { recursive: true, force: true });
  });

  it('finds the metrics of every part of both processes', () => {
    // A guard on the guard: were a part's metrics not found, its alerts would all fail below, but
    // a part with no alert yet would go unnoticed.
    for (const name of [
      'impulse_process_start_time_seconds',
      'impulse_http_requests_total',
      'impulse_http_refusals_total',
      'impulse_gateway_upstream_errors_total',
      'impulse_raft_is_leader',
      'impulse_raft_log_fsync_duration_seconds_bucket',
      'impulse_replica_storage_fault',
      'impulse_replica_consistency_mismatches_total',
      'impulse_kv_slot_mismatches_total',
      'impulse_transport_connection_state',
    ]) {
      expect(exported.has(name), name).toBe(true);
    }
  });

  it('gives every alert a unique name, an expression, a duration, a severity and annotations', () => {
    expect(rules.length).toBeGreaterThan(0);
    const names = rules.map((rule) => rule.alert);
    expect(new Set(names).size, 'alert names are unique').toBe(names.length);
    for (const rule of rules) {
      expect(rule.alert, JSON.stringify(rule)).toMatch(/^Impulse[A-Z][A-Za-z]+$/);
      expect(typeof rule.expr === 'string' && rule.expr.trim() !== '', `${rule.alert}: expr`).toBe(true);
      expect(String(rule.for), `${rule.alert}: for`).toMatch(/^\d+[smhd]$/);
      expect(severities, `${rule.alert}: labels.severity`).toContain(rule.labels?.severity);
      for (const field of ['summary', 'description']) {
        const text = rule.annotations?.[field];
        expect(typeof text === 'string' && text.trim() !== '', `${rule.alert}: annotations.${field}`).toBe(
          true,
        );
      }
    }
  });

  it('points every description at a docs section that exists', () => {
    for (const rule of rules) {
      const references = [
        ...(rule.annotations.description ?? '').matchAll(
          /(?<![\w/.-])((?:[\w.-]+\/)*[\w.-]+\.md)(?:#([\w-]+))?/g,
        ),
      ];
      expect(references.length, `${rule.alert}: a reference such as docs/deploy.md#alerts`).toBeGreaterThan(
        0,
      );
      for (const [reference, path = '', anchor] of references) {
        expect(existsSync(new URL(path, repositoryRoot)), `${rule.alert}: ${reference}: no such file`).toBe(
          true,
        );
        if (anchor !== undefined) {
          expect(
            [...anchorsOf(readRepositoryFile(path))],
            `${rule.alert}: ${reference}: no such section`,
          ).toContain(anchor);
        }
      }
    }
  });

  it.each(rules.map((rule) => [rule.alert, rule] as const))(
    '%s names only metrics and labels that the processes export',
    (_name, rule) => {
      const metrics = [...rule.expr.matchAll(/(?<![\w:])impulse_[a-z0-9_]+/g)].map(([name]) => name);
      const unknown = metrics.filter((name) => !exported.has(name));
      expect(unknown, `${rule.alert}: metrics no process exports`).toEqual([]);

      // A selector's matchers name labels of its own series.
      for (const [, name = '', matchers = ''] of rule.expr.matchAll(/([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}/g)) {
        const labels = exported.get(name);
        expect(labels, `${rule.alert}: ${name} has no known labels`).toBeDefined();
        for (const [, label = ''] of matchers.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)) {
          expect([...(labels ?? [])], `${rule.alert}: ${name} has no label ${label}`).toContain(label);
        }
      }

      // Grouping and matching clauses, and the annotations' $labels, name labels of the series used.
      const series = /\bup\b/.test(rule.expr) ? [...metrics, 'up'] : metrics;
      const used = new Set(series.flatMap((name) => [...(exported.get(name) ?? [])]));
      const clauseLabels = [
        ...rule.expr.matchAll(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g),
      ].flatMap(([, list = '']) =>
        list
          .split(',')
          .map((label) => label.trim())
          .filter((label) => label !== ''),
      );
      const annotationLabels = Object.values(rule.annotations).flatMap((text) =>
        [...text.matchAll(/\$labels\.([a-zA-Z_]\w*)/g)].map(([, label = '']) => label),
      );
      for (const label of [...clauseLabels, ...annotationLabels]) {
        expect([...used], `${rule.alert}: no series it uses has the label ${label}`).toContain(label);
      }
    },
  );

  it('is listed in docs/deploy.md, alert by alert, with its severity', () => {
    const section = /\n## Alerts\n([\s\S]*?)(?:\n## |$)/.exec(readRepositoryFile('docs/deploy.md'));
    expect(section, 'docs/deploy.md has a section "Alerts"').not.toBeNull();
    const documented = [...(section?.[1] ?? '').matchAll(/^\|\s*`(Impulse\w+)`\s*\|\s*(\w+)\s*\|/gm)].map(
      ([, alert, severity]) => `${alert} ${severity}`,
    );
    expect(documented.sort()).toEqual(rules.map((rule) => `${rule.alert} ${rule.labels.severity}`).sort());
  });

  it('alerts on the jobs that the sample scrape configuration defines', () => {
    const scrape = parse(readRepositoryFile(scrapeConfigPath)) as {
      rule_files: string[];
      scrape_configs: { job_name: string }[];
    };
    expect(scrape.rule_files).toContain('impulse-alerts.yml');
    const jobs = scrape.scrape_configs.map((config) => config.job_name);
    const jobsInRules = rules.flatMap((rule) =>
      [...rule.expr.matchAll(/\bjob\s*=\s*"([^"]*)"/g)].map(([, job = '']) => job),
    );
    expect(jobsInRules.length).toBeGreaterThan(0);
    for (const job of jobsInRules) expect(jobs).toContain(job);
  });
});
