// Checks custom resources against their upstream CRDs, offline, in two ways:
// 1. the validators that kubernetes-models generates from the CRDs' OpenAPI schemas (types,
//    enums, patterns, required fields, list limits);
// 2. the TypeScript compiler on the same objects typed with the generated interfaces: its
//    excess-property check finds misspelt or unknown fields, which the API server would refuse
//    (kubectl validates fields strictly) and the schema validators let through.
// CEL rules (x-kubernetes-validations) are checked by neither; only an API server runs them.
//
// Input on stdin: a JSON array of resources. Output on stdout: a JSON array with one entry per
// resource, {apiVersion, kind, name, errors: [...]}. Exit status 0 even when errors are found;
// 2 when a resource has no model here.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const MODELS = {
  "monitoring.coreos.com/v1/ServiceMonitor":
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor",
  "monitoring.coreos.com/v1/PrometheusRule":
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule",
  "gateway.networking.k8s.io/v1/HTTPRoute":
    "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute",
  "gateway.networking.k8s.io/v1/GRPCRoute":
    "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/GRPCRoute",
  "keda.sh/v1alpha1/ScaledObject": "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject",
  "keda.sh/v1alpha1/TriggerAuthentication":
    "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication",
};

const here = dirname(fileURLToPath(import.meta.url));
const resources = JSON.parse(readFileSync(0, "utf8"));

const modulePaths = resources.map((resource) => {
  const key = `${resource.apiVersion}/${resource.kind}`;
  if (!(key in MODELS)) {
    process.stderr.write(`no model for ${key}; known: ${Object.keys(MODELS).join(", ")}\n`);
    process.exit(2);
  }
  return MODELS[key];
});

const results = [];
for (const [index, resource] of resources.entries()) {
  const module = await import(modulePaths[index]);
  const model = new module[resource.kind](resource);
  const errors = [];
  try {
    model.validate();
  } catch (error) {
    errors.push(`schema: ${error.message}`);
  }
  results.push({
    apiVersion: resource.apiVersion,
    kind: resource.kind,
    name: resource.metadata?.name ?? "",
    errors,
  });
}

// One source file, one typed constant per resource; diagnostics map back by line.
const lines = [];
const firstLineOf = [];
for (const [index, resource] of resources.entries()) {
  lines.push(`import type { I${resource.kind} as T${index} } from "${modulePaths[index]}";`);
}
for (const [index, resource] of resources.entries()) {
  firstLineOf.push(lines.length);
  const body = JSON.stringify(resource, null, 2).split("\n");
  lines.push(`export const resource${index}: T${index} = ${body[0]}`, ...body.slice(1));
  lines[lines.length - 1] += ";";
}
const sourcePath = join(here, "__resources__.ts");
const sourceText = lines.join("\n");
const options = {
  strict: true,
  noEmit: true,
  skipLibCheck: true,
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  types: [],
};
const host = ts.createCompilerHost(options);
const readFile = host.readFile.bind(host);
const fileExists = host.fileExists.bind(host);
const getSourceFile = host.getSourceFile.bind(host);
host.readFile = (file) => (file === sourcePath ? sourceText : readFile(file));
host.fileExists = (file) => file === sourcePath || fileExists(file);
host.getSourceFile = (file, languageVersion, ...rest) =>
  file === sourcePath
    ? ts.createSourceFile(file, sourceText, languageVersion, true)
    : getSourceFile(file, languageVersion, ...rest);
const program = ts.createProgram([sourcePath], options, host);
for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
  const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n");
  if (!diagnostic.file || diagnostic.file.fileName !== sourcePath) {
    // A problem with the models themselves: report it against every resource.
    for (const result of results) result.errors.push(`types: ${message}`);
    continue;
  }
  const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start ?? 0);
  let owner = 0;
  while (owner + 1 < firstLineOf.length && firstLineOf[owner + 1] <= line) owner += 1;
  const fieldLine = lines[line].trim();
  results[owner].errors.push(`types: ${message} (at: ${fieldLine})`);
}

process.stdout.write(JSON.stringify(results, null, 2) + "\n");
