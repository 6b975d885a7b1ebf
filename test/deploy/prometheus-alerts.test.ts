import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse } from 'yaml';
import { Registry, createLogger, loadClusterConfig } from '@impulse/common';
import { Gateway, parseGatewayConfig } from '@impulse/gateway';
import { freePort } from '@impulse/local-cluster';
import { NodeProcess, parseShardNodeConfig } from '@impulse/shard-node';

/**
 * deploy/prometheus/impulse-alerts.yml checked against the code: every rule has what an operator
 * needs (severity, summary, a description that points at a docs section that exists), and every
 * metric and label its expressions and annotations name is one that a real node (`shard-node
 * --node-id`, hosting two groups) and gateway export. The metric names are those on the two
 * processes' `/metrics` pages (a family is listed there, with its HELP and TYPE, before it has a
 * sample); their labels come from the registries behind the pages. Both processes are started
 * here, in this process, so that a renamed metric or label fails this test rather than silently
 * blinding an alert. What the rules do with the series is tested by `promtool test rules` (`npm
 * run test:alerts`).
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

/** The metric families a `/metrics` page lists (its `# TYPE` lines), with their types. */
function familiesOf(page: string): Map<string, RegisteredMetric['type']> {
  const families = new Map<string, RegisteredMetric['type']>();
  for (const [, name = '', type = ''] of page.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    families.set(name, type as RegisteredMetric['type']);
  }
  return families;
}

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
  /** The labels of the node's series of a hosted replica's metric, for the guard below. */
  let replicaSeriesLabels: Set<string> | undefined;
  let directory: string;
  let node: NodeProcess | undefined;
  let gateway: Gateway | undefined;

  beforeAll(async () => {
    // Every registry a process fills is made by createMetricsRegistry, which gives it its default
    // labels (a node's service and node): watching that call finds each registry and those labels.
    const setDefaultLabels = vi.spyOn(Registry.prototype, 'setDefaultLabels');
    try {
      directory = await mkdtemp(join(tmpdir(), 'impulse-alert-rules-'));
      const [port, peerPort] = [await freePort(), await freePort()];
      const clusterJson = JSON.stringify({
        epoch: 1,
        nodes: [{ id: 'n1', url: `http://127.0.0.1:${port}`, peerAddress: `127.0.0.1:${peerPort}` }],
        groups: ['g1', 'g2'].map((id) => ({ id, replicas: [{ id: `${id}-r1`, node: 'n1', raftId: 1 }] })),
      });
      const nodeConfig = parseShardNodeConfig({
        argv: [
          '--node-id=n1',
          `--port=${port}`,
          '--engine=memory',
          `--data-dir=${directory}`,
          `--cluster=${clusterJson}`,
          '--bootstrap',
          '--log-level=silent',
        ],
        env: {},
      });
      node = await NodeProcess.start(nodeConfig, createLogger({ service: 'shard-node', level: 'silent' }));
      const gatewayConfig = parseGatewayConfig({ argv: ['--port=0', '--log-level=silent'], env: {} });
      gateway = await Gateway.start(
        gatewayConfig,
        loadClusterConfig({ json: clusterJson }),
        createLogger({ service: 'gateway', level: 'silent' }),
      );
      const pages = new Map<string, string>();
      for (const [service, url] of [
        ['shard-node', `http://127.0.0.1:${node.port}`],
        ['gateway', `http://127.0.0.1:${gateway.port}`],
      ] as const) {
        const response = await fetch(`${url}/metrics`);
        expect(response.status, `${service} /metrics`).toBe(200);
        pages.set(service, await response.text());
      }
      const services = new Set<string>();
      setDefaultLabels.mock.contexts.forEach((context, call) => {
        const registry = context as Registry;
        const defaultLabels = (setDefaultLabels.mock.calls[call]?.[0] ?? {}) as Record<string, string>;
        const service = String(defaultLabels['service']);
        services.add(service);
        const families = familiesOf(pages.get(service) ?? '');
        const labels = [...targetLabels, ...Object.keys(defaultLabels)];
        for (const metric of registry.getMetricsAsArray() as unknown as RegisteredMetric[]) {
          // Only what the process's page lists: the series Prometheus would scrape.
          if (families.get(metric.name) !== metric.type) continue;
          for (const [series, seriesLabels] of seriesOf(metric, labels)) {
            exported.set(series, new Set([...(exported.get(series) ?? []), ...seriesLabels]));
          }
          if (metric.name === 'impulse_raft_is_leader')
            replicaSeriesLabels = seriesOf(metric, labels)[0]?.[1];
        }
      });
      expect([...services].sort()).toEqual(['gateway', 'shard-node']);
      // The page is the node's, hosting both groups.
      expect(pages.get('shard-node')).toMatch(/^impulse_raft_is_leader\{[^}]*group="g2"[^}]*\} [01]$/m);
    } finally {
      setDefaultLabels.mockRestore();
    }
  });

  afterAll(async () => {
    await gateway?.stop();
    await node?.stop();
    await rm(directory, { recursive: true, force: true });
  });

  it("finds the metrics of every part of both processes, a node's among them", () => {
    // A guard on the guard: were a part's metrics not found, its alerts would all fail below, but
    // a part with no alert yet would go unnoticed.
    for (const name of [
      'impulse_process_start_time_seconds',
      'impulse_http_requests_total',
      'impulse_http_refusals_total',
      'impulse_gateway_upstream_errors_total',
      'impulse_raft_is_leader',
      'impulse_raft_log_fsync_duration_seconds_bucket',
      'impulse_raft_log_fsync_writes_bucket',
      'impulse_replica_storage_fault',
      'impulse_replica_consistency_mismatches_total',
      'impulse_kv_slot_mismatches_total',
      'impulse_transport_connection_state',
      'impulse_node_replicas',
    ]) {
      expect(exported.has(name), name).toBe(true);
    }
    // A node's replica series name the node and the group; there is no replica label to alert on.
    expect([...(replicaSeriesLabels ?? [])].sort()).toEqual(['group', 'instance', 'job', 'node', 'service']);
    // The node's log is the node's: its fsyncs carry no group.
    expect(exported.get('impulse_raft_log_fsync_duration_seconds_bucket')).not.toContain('group');
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
