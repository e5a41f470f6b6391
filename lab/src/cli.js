// The laboratory on the command line: `node lab/dist/sampy-lab-cli.cjs < request.json`.
//
// stdin holds one run request (a JSON object, see lab.js) or a list of them; stdout gets the
// answer (or the list of answers) as JSON. A request that cannot run gets {"error": message}
// in its place and the exit status is 1. `--list` prints what the browser twin runs: its
// variants, the Python-only rows with the reason, the functions and the bases.

import { answer } from "./lab.js";
import { browserVariants, pythonOnly, variants } from "./registry.js";
import { BASE_CLASSES, TWINS } from "./optim/index.js";
import { names } from "./functions/index.js";

function listing() {
  return {
    variants: browserVariants().map((row) => row.name),
    implemented_classes: Object.keys(TWINS),
    registry: variants().map((row) => row.name),
    python_only: pythonOnly(),
    functions: names(),
    bases: Object.keys(BASE_CLASSES),
  };
}

function answerOrError(request) {
  try {
    return [answer(request), true];
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    return [{ error: error.message }, false];
  }
}

function main() {
  if (process.argv.includes("--list")) {
    process.stdout.write(JSON.stringify(listing()) + "\n");
    return;
  }
  const chunks = [];
  process.stdin.on("data", (chunk) => chunks.push(chunk));
  process.stdin.on("end", () => {
    let request;
    try {
      request = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch (error) {
      process.stdout.write(JSON.stringify({ error: `stdin is not JSON: ${error.message}` }) + "\n");
      process.exitCode = 1;
      return;
    }
    let ok = true;
    let out;
    if (Array.isArray(request)) {
      out = request.map((r) => {
        const [result, fine] = answerOrError(r);
        ok = ok && fine;
        return result;
      });
    } else {
      [out, ok] = answerOrError(request);
    }
    process.stdout.write(JSON.stringify(out) + "\n");
    if (!ok) process.exitCode = 1;
  });
}

main();
