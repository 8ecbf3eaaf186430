// Northflank's JS client (npm @northflank/js-client) against releaseflow: every endpoint of the
// reference's section 6, the team-scoped twins, the fetch-all helper over pages, and an error.
// Reads RELEASEFLOW_URL, RELEASEFLOW_ADMIN_TOKEN, RELEASEFLOW_VIEWER_TOKEN and RELEASEFLOW_PROJECT;
// prints one JSON object: what each call answered (data, pagination, error status and message).
const { ApiClient, ApiClientInMemoryContextProvider } = require("@northflank/js-client");

async function client(token) {
  const contexts = new ApiClientInMemoryContextProvider();
  await contexts.addContext({ name: "releaseflow", token, host: process.env.RELEASEFLOW_URL });
  return new ApiClient(contexts, { throwErrorOnHttpErrorCode: false });
}

function shown(answer) {
  const error = answer.error ? { status: answer.error.status, message: answer.error.message } : null;
  return { data: answer.data ?? null, pagination: answer.pagination ?? null, error };
}

async function main() {
  const admin = await client(process.env.RELEASEFLOW_ADMIN_TOKEN);
  const viewer = await client(process.env.RELEASEFLOW_VIEWER_TOKEN);
  const where = { projectId: process.env.RELEASEFLOW_PROJECT, pipelineId: "main" };
  const development = { ...where, stage: "development" };
  const out = {};
  out.pipelines = shown(await admin.list.pipelines({ parameters: { projectId: where.projectId } }));
  out.pipeline = shown(await admin.get.pipeline({ parameters: where }));
  out.flow = shown(await admin.get.releaseFlow({ parameters: development }));
  out.updated = shown(await admin.update.releaseFlow({ parameters: development, data: out.flow.data }));
  out.started = [];
  for (const n of [1, 2, 3]) {
    const data = { name: `js-${n}`, arguments: { who: "js" } };
    out.started.push(shown(await admin.run.releaseFlow({ parameters: development, data })));
  }
  const runId = out.started[0].data.id;
  out.firstPage = shown(await admin.list.releaseFlowRuns({ parameters: development, options: { per_page: 2 } }));
  out.every = shown(await admin.list.releaseFlowRuns.all({ parameters: development, options: { per_page: 2 } }));
  out.run = shown(await admin.get.releaseFlowRun({ parameters: { ...development, runId, teamId: "team1" } }));
  const gated = shown(await admin.run.releaseFlow({ parameters: { ...where, stage: "production" }, data: {} }));
  out.aborted = shown(
    await admin.abort.releaseFlowRun({ parameters: { ...where, stage: "production", runId: gated.data.id } }),
  );
  out.missing = shown(await viewer.get.releaseFlowRun({ parameters: { ...development, runId: "no-such-run" } }));
  out.forbidden = shown(await viewer.run.releaseFlow({ parameters: development, data: {} }));
  console.log(JSON.stringify(out));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
