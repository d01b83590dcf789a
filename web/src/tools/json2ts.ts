// Convert JSON schemas to TypeScript declarations with json-schema-to-typescript.
// Input (stdin): {"schema": <one JSON schema whose $defs hold every type>}.
// Output (stdout): the TypeScript declarations.
import { compile } from "json-schema-to-typescript";

const chunks: Buffer[] = [];
process.stdin.on("data", (c: Buffer) => chunks.push(c));
process.stdin.on("end", () => {
  let input: { schema: Record<string, unknown>; name: string };
  try {
    input = JSON.parse(Buffer.concat(chunks).toString("utf8")) as typeof input;
  } catch (exc) {
    process.stderr.write(`json2ts: the input is not JSON: ${String(exc)}\n`);
    process.exit(2);
    return;
  }
  compile(input.schema as never, input.name, {
    bannerComment: "",
    format: false,
    additionalProperties: false,
    unreachableDefinitions: true,
    strictIndexSignatures: true,
  })
    .then((ts) => process.stdout.write(ts))
    .catch((exc: unknown) => {
      process.stderr.write(`json2ts: ${exc instanceof Error ? exc.message : String(exc)}\n`);
      process.exit(1);
    });
});
