// client.ts — a small typed client of the lsmi API on the TypeScript that
// openapi-typescript generates from proto/openapi.yaml (gen/api.d.ts,
// made by run.sh). It only has to compile (tsc --strict): it pins the
// contract's types where clients rely on them — nullable numbers are
// nullable, the new endpoints and fields exist with their types.
import type { components, paths } from "./gen/api";

type Job = components["schemas"]["Job"];
type Row = components["schemas"]["ResultRow"];
type Page = components["schemas"]["ResultPage"];
type Aggregates = components["schemas"]["Aggregates"];
type ParamTable = components["schemas"]["ParamTable"];

// A value JSON cannot hold is null: the server sends null for h1, s, ...
const damaged: Row = { index: 0, split: "val", y: 1, h1: null, s: null };

// Rows join back to the file: its row, the sample's id (a string, or an
// integer when the file's ids are) and its label.
const joined: Row = { index: 3, split: "val", row: 17, id: "r17, \"cat\"",
                      label: "cat" };
const numeric: Row = { index: 4, split: "train", id: 5000, label: 42 };

// Where a job's numbers came from: the input's SHA-256 and keys, every
// parameter as fitted, the seconds; and the classes by name.
function origin(job: Job): string {
  if (job.summary == null || job.summary.provenance == null) return "";
  const p = job.summary.provenance;
  const sha: string | null = p.input.sha256;
  const x1: string | null | undefined = p.input.keys.x1;
  const names: (string | number)[] | undefined = job.summary.class_names;
  return `${p.lsmi} ${sha} ${x1} ${p.params.seed} ${p.seconds.total} ${names}`;
}

// Progress: ETA and queue position exist and may be null.
function eta(job: Job): string {
  const s: number | null | undefined = job.progress.eta_seconds;
  const q: number | null | undefined = job.progress.queue_position;
  if (q != null) return `#${q} in the queue`;
  return s == null ? "unknown" : `${s} s`;
}

// The summary's means may be null (a part without rows).
function meanS(job: Job): number | null {
  if (job.summary == null) return null;
  const S: number | null = job.summary.val.S;
  return S;
}

// A page links the next one, or says it is the last.
function nextOf(page: Page): string | null {
  return page.next;
}

// Aggregates: per split, per column, the histogram and the class means.
function counts(a: Aggregates, split: string, col: string): number[] {
  const c = a.splits[split]?.columns[col];
  return c ? c.histogram.counts : [];
}

function classMean(a: Aggregates, col: string, y: number): number | null {
  const k = a.splits["val"]?.columns[col]?.by_class.find((x) => x.y === y);
  return k ? k.mean : null;
}

function className(a: Aggregates, y: number): string {
  const k = a.splits["val"]?.columns["s"]?.by_class.find((x) => x.y === y);
  return k && k.label !== undefined ? String(k.label) : String(y);
}

// The parameter table gives every default and the presets.
function presetEnsemble(t: ParamTable): number | undefined {
  return t.presets.robust.ensemble;
}

// The operations' query parameters are typed as the server takes them.
type ResultsQuery = NonNullable<paths["/v1/jobs/{id}/results"]["get"]["parameters"]["query"]>;
const q: ResultsQuery = {
  split: "all", limit: 10, sort: "-s", y: "1", fields: "y,s",
  ranges: { s_min: 0.5, u1_max: 0, row_min: 100 }, format: "csv",
};
const byFile: ResultsQuery = { split: "all", sort: "row", fields: "row,id,label" };
type AggQuery = NonNullable<paths["/v1/jobs/{id}/aggregates"]["get"]["parameters"]["query"]>;
const aq: AggQuery = { split: "val", column: "r,s", bins: 30 };
type SamplePath = paths["/v1/jobs/{id}/results/{split}/{index}"]["get"]["parameters"]["path"];
const sp: SamplePath = { id: "job_x", split: "train", index: 3 };

// A typed GET over fetch.
async function get<T>(base: string, path: string, token?: string): Promise<T> {
  const r = await fetch(base + path, {
    headers: token ? { Authorization: "Bearer " + token } : {},
  });
  if (!r.ok) {
    const p = (await r.json()) as components["schemas"]["Problem"];
    throw new Error(`${p.status} ${p.title}: ${p.detail}` +
                    (p.field ? ` [${p.field}]` : ""));
  }
  return (await r.json()) as T;
}

export async function demo(base: string): Promise<void> {
  const job = await get<Job>(base, "/v1/jobs/job_x");
  const agg = await get<Aggregates>(base, "/v1/jobs/job_x/aggregates?split=all");
  const page = await get<Page>(base, "/v1/jobs/job_x/results?sort=-s");
  const table = await get<ParamTable>(base, "/v1/params");
  console.log(eta(job), meanS(job), nextOf(page), counts(agg, "val", "s"),
              classMean(agg, "s", 1), presetEnsemble(table), damaged, q, aq, sp,
              joined, numeric, origin(job), className(agg, 0), byFile);
}
