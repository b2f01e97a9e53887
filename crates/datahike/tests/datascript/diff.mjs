// DataScript side of the differential query test (../datascript_diff.rs).
//
// Reads one job as JSON on stdin:
//   { "schema": "<EDN map, DataScript schema>",
//     "tx":     ["<EDN tx data>", ...],
//     "queries": [{ "kind": "q" | "pull" | "pull-many", "query": "<EDN>", "inputs": ["<EDN>", ...],
//                   "db": false (optional, q only: the database is not passed before the inputs) }, ...] }
// and prints one line per query, in order, as EDN: `[i :ok <result>]`, `[i :err "<message>"]`, or
// `[i :skip "<why>"]` when DataScript took more than QUERY_MS or more than MEMORY_MB of heap for it.
//
// Every EDN text is read by DataScript's own ClojureScript reader and every result is printed by
// ClojureScript's printer (`toString` of a ClojureScript value is `pr-str`), so both engines read
// the same query text and no JS conversion stands between DataScript and the comparison. The npm
// build exports only the JS API, whose `q` and `pull` convert results with `clj->js` (keywords
// lose their namespace, sets become arrays) and whose transactions name attributes by strings.
// So this script loads the pinned build with one extra export added: the functions the JS API's
// `q` and `pull` themselves call (reader, `datascript.core/q`, `datascript.core/pull`), found by
// the shape of those two export statements. Nothing else in the library changes.
//
// DataScript does not deduplicate relations it projects, so a few generated queries build
// intermediate results of millions of tuples. The queries therefore run in a worker thread with a
// heap limit, watched by this thread; a worker that stops answering or runs out of memory is
// replaced by a new one that goes on with the next query.
import { createRequire } from "node:module";
import fs from "node:fs";
import vm from "node:vm";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";

const require = createRequire(import.meta.url);
const EXPECTED_VERSION = "1.8.1";
const QUERY_MS = 3000;
const SETUP_MS = 60000;
const MEMORY_MB = 1024;

function loadDataScript() {
  const version = require("datascript/package.json").version;
  if (version !== EXPECTED_VERSION) {
    throw new Error(`datascript ${version} installed, this script knows the build of ${EXPECTED_VERSION}`);
  }
  const file = require.resolve("datascript");
  let src = fs.readFileSync(file, "utf8");
  // ka("datascript.js.q",F);F.l=function(a,b){a=READ(a);b=APPLY(Q,a,b);return CLJ_TO_JS(b)}
  const q = src.match(
    /ka\("datascript\.js\.q",(\w+)\);\1\.l=function\(a,b\)\{a=(\w+)\(a\);b=(\w+)\((\w+),a,b\);return \w+\(b\)\}/,
  );
  // ka("datascript.js.pull",function(a,b,c){b=READ(b);c=JS_TO_CLJ(c);a=P3?P3(a,b,c):P.call(null,a,b,c);return ..(a)})
  const pull = src.match(
    /ka\("datascript\.js\.pull",function\(a,b,c\)\{b=(\w+)\(b\);c=[\w.]+\(c\);a=\w+\?\w+\(a,b,c\):(\w+)\.call\(null,a,b,c\);return \w+\(a\)\}\)/,
  );
  const tail = ";return this.datascript.js;";
  const at = src.lastIndexOf(tail);
  if (!q || !pull || at < 0) {
    throw new Error("cannot find datascript.js.q / datascript.js.pull in the datascript build");
  }
  const [, , read, apply, coreQ] = q;
  const corePull = pull[2];
  const extra =
    `;this.datascript.js.diff_internals={` +
    `read:${read},` +
    `q:function(query,inputs){return ${apply}(${coreQ},query,inputs)},` +
    `pull:function(db,pattern,eid){return ${corePull}.call(null,db,pattern,eid)}}`;
  src = src.slice(0, at) + extra + src.slice(at);
  const module = { exports: {} };
  vm.runInThisContext(`(function (module, exports) {${src}\n})`, { filename: file })(module, module.exports);
  return module.exports;
}

// EDN text of a value returned by DataScript: ClojureScript values print themselves; the JS
// primitives that ClojureScript uses for numbers, strings, booleans and nil are printed here.
function ednString(x) {
  if (x === null || x === undefined) return "nil";
  switch (typeof x) {
    case "number":
      if (Number.isNaN(x)) return "##NaN";
      if (!Number.isFinite(x)) return x > 0 ? "##Inf" : "##-Inf";
      return String(x);
    case "boolean":
      return String(x);
    case "string":
      return JSON.stringify(x);
    default:
      return x.toString();
  }
}

// Worker: loads DataScript and the data, then answers the queries from `start` on, one message each.
function work({ text, start }) {
  const d = loadDataScript();
  const ds = d.diff_internals;
  const job = JSON.parse(text);
  let db = d.empty_db(ds.read(job.schema));
  for (const tx of job.tx) db = d.db_with(db, ds.read(tx));
  parentPort.postMessage({ ready: true });
  for (let i = start; i < job.queries.length; i++) {
    parentPort.postMessage({ i, line: answer(ds, db, job.queries[i], i) });
  }
}

function answer(ds, db, item, i) {
  try {
    const inputs = item.inputs.map((text) => ds.read(text));
    if (item.kind === "q") {
      // `"db": false`: a query that needs no database runs with the inputs alone (none at all
      // when it has no `:in`).
      const args = item.db === false ? inputs : [db, ...inputs];
      return `[${i} :ok ${ednString(ds.q(ds.read(item.query), args))}]`;
    }
    if (item.kind === "pull") {
      return `[${i} :ok ${ednString(ds.pull(db, ds.read(item.query), inputs[0]))}]`;
    }
    if (item.kind === "pull-many") {
      // datascript.core/pull-many is a map of pull over the ids; print it as one vector.
      const pattern = ds.read(item.query);
      return `[${i} :ok [${inputs.map((eid) => ednString(ds.pull(db, pattern, eid))).join(" ")}]]`;
    }
    throw new Error(`unknown kind ${item.kind}`);
  } catch (e) {
    return `[${i} :err ${JSON.stringify(String(e && e.message ? e.message : e))}]`;
  }
}

// Main thread: runs workers until every query has a line, replacing a stuck or exhausted one.
function runWorker(text, start, n, out) {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), {
      workerData: { text, start },
      resourceLimits: { maxOldGenerationSizeMb: MEMORY_MB },
    });
    let next = start;
    let ready = false;
    let done = false;
    let timer = null;
    const arm = (ms) => {
      clearTimeout(timer);
      timer = setTimeout(() => finish(`no answer within ${ms} ms`), ms);
    };
    const finish = (why) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (!ready) {
        worker.terminate().finally(() => reject(new Error(`DataScript did not start: ${why}`)));
        return;
      }
      if (why !== null && next < n) {
        out.push(`[${next} :skip ${JSON.stringify(why)}]`);
        next += 1;
      }
      worker.terminate().finally(() => resolve(next));
    };
    worker.on("message", (m) => {
      if (done) return;
      if (m.ready) {
        ready = true;
      } else {
        out.push(m.line);
        next = m.i + 1;
      }
      arm(QUERY_MS);
    });
    worker.on("error", (e) => finish(String(e && e.message ? e.message : e)));
    worker.on("exit", () => finish(next < n ? "the worker exited" : null));
    arm(SETUP_MS);
  });
}

async function main() {
  const text = fs.readFileSync(0, "utf8");
  const n = JSON.parse(text).queries.length;
  const out = [];
  for (let start = 0; start < n; ) start = await runWorker(text, start, n, out);
  process.stdout.write(out.map((line) => line + "\n").join(""));
}

if (isMainThread) {
  main().catch((e) => {
    process.stderr.write(`${e.stack || e}\n`);
    process.exit(1);
  });
} else {
  work(workerData);
}
