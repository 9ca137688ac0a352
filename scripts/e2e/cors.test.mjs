// Cross-origin use of pushlab in a real browser (Debian's Chromium, headless,
// driven by playwright-core): a page on one origin subscribes, publishes and
// polls on a pushlab of another origin.
//
//   node cors.test.mjs PAGE_URL ALLOWING_URL REFUSING_URL STAR_URL
//
// PAGE_URL is any page of a first server: its origin is the page's.
// ALLOWING_URL is a pushlab started with `--allow-origin <that origin>`;
// REFUSING_URL one started without `--allow-origin` (same origin only);
// STAR_URL one started with `--allow-origin '*'` (any origin, without
// credentials).
// Checks, from inside the page: an EventSource on the allowing server opens
// and receives a message published by `fetch` with a JSON content type (a
// non-simple request, so the browser sends a preflight first); the publish
// reply and a long poll's body are readable; on the refusing server the
// browser blocks the same fetch and the EventSource fails; on the `*` server
// a plain fetch, a preflighted publish and an EventSource work, while the
// browser refuses a credentialed fetch, a credentialed preflighted publish
// and an EventSource `withCredentials` (Fetch: `*` is no answer to a request
// whose credentials mode is "include").

import { openBrowser } from "./browser.mjs";

const [pageUrl, allowing, refusing, star] = process.argv.slice(2);
if (!pageUrl || !allowing || !refusing || !star) {
  console.error("usage: node cors.test.mjs PAGE_URL ALLOWING_URL REFUSING_URL STAR_URL");
  process.exit(2);
}
const started = Date.now();
const browser = await openBrowser("pushlab-cors-");
let verdict = "FAIL";
let detail = "";
try {
  const page = browser.page;
  await page.goto(pageUrl);
  const result = await page.evaluate(async ([allowing, refusing, star]) => {
    const within = (ms, p) => Promise.race([p, new Promise((_, no) => setTimeout(() => no(new Error(`timed out after ${ms} ms`)), ms))]);
    const out = { origin: location.origin };
    // Allowed: a stream, a preflighted publish, a long poll.
    const es = new EventSource(new URL("/events?topic=cors", allowing));
    await within(5000, new Promise((ok, no) => { es.onopen = ok; es.onerror = () => no(new Error("EventSource on the allowing server failed")); }));
    const received = within(5000, new Promise((ok) => { es.onmessage = (e) => ok(e.data); }));
    const reply = await fetch(new URL("/publish?topic=cors", allowing), {
      method: "POST", headers: { "Content-Type": "application/json" }, body: "hello across origins",
    });
    out.publishStatus = reply.status;
    out.publishId = (await reply.json()).id;
    out.streamed = await received;
    es.close();
    const poll = await fetch(new URL("/long-poll?topic=cors&since=0&timeout=1", allowing));
    out.polled = (await poll.json()).messages.map((m) => m.data);
    // Refused: the browser must block both.
    out.refusedFetch = await fetch(new URL("/poll?topic=cors", refusing)).then(() => "readable", (e) => e.name);
    const es2 = new EventSource(new URL("/events?topic=cors", refusing));
    out.refusedStream = await within(5000, new Promise((ok) => {
      es2.onopen = () => ok("opened");
      es2.onerror = () => ok(es2.readyState === EventSource.CLOSED ? "closed" : "error");
    }));
    es2.close();
    // Any origin under '*', but never with credentials.
    const blocked = (p) => p.then((r) => `readable (${r.status})`, (e) => e.name);
    out.starPlain = await fetch(new URL("/poll?topic=star&since=0", star)).then((r) => r.status, (e) => e.name);
    out.starPublish = await fetch(new URL("/publish?topic=star", star), {
      method: "POST", headers: { "Content-Type": "application/json" }, body: "any origin",
    }).then((r) => r.status, (e) => e.name);
    out.starCredentialed = await blocked(fetch(new URL("/poll?topic=star", star), { credentials: "include" }));
    out.starCredentialedPublish = await blocked(fetch(new URL("/publish?topic=star", star), {
      method: "POST", credentials: "include", headers: { "Content-Type": "application/json" }, body: "x",
    }));
    const es3 = new EventSource(new URL("/events?topic=star&since=0", star));
    out.starStream = await within(5000, new Promise((ok) => {
      es3.onmessage = (e) => ok(e.data);
      es3.onerror = () => ok("error");
    }));
    es3.close();
    const es4 = new EventSource(new URL("/events?topic=star", star), { withCredentials: true });
    out.starCredentialedStream = await within(5000, new Promise((ok) => {
      es4.onopen = () => ok("opened");
      es4.onerror = () => ok(es4.readyState === EventSource.CLOSED ? "closed" : "error");
    }));
    es4.close();
    return out;
  }, [allowing, refusing, star]);
  console.log("cors:", JSON.stringify(result));
  const problems = [];
  if (result.publishStatus !== 200 || !result.publishId) problems.push(`publish answered ${result.publishStatus}`);
  if (result.streamed !== "hello across origins") problems.push(`stream got ${JSON.stringify(result.streamed)}`);
  if (!result.polled.includes("hello across origins")) problems.push(`long poll got ${JSON.stringify(result.polled)}`);
  if (result.refusedFetch !== "TypeError") problems.push(`refusing server's poll was ${result.refusedFetch}`);
  if (result.refusedStream !== "closed") problems.push(`refusing server's stream ${result.refusedStream}`);
  if (result.starPlain !== 200) problems.push(`'*' server's plain poll was ${result.starPlain}`);
  if (result.starPublish !== 200) problems.push(`'*' server's publish was ${result.starPublish}`);
  if (result.starStream !== "any origin") problems.push(`'*' server's stream got ${JSON.stringify(result.starStream)}`);
  if (result.starCredentialed !== "TypeError") problems.push(`'*' server's credentialed poll was ${result.starCredentialed}`);
  if (result.starCredentialedPublish !== "TypeError") problems.push(`'*' server's credentialed publish was ${result.starCredentialedPublish}`);
  if (result.starCredentialedStream !== "closed") problems.push(`'*' server's credentialed stream ${result.starCredentialedStream}`);
  if (problems.length) throw new Error(problems.join("; "));
  verdict = "PASS";
  detail = `page ${result.origin}: stream + preflighted publish + long poll across origins; refused where not allowed; '*' without credentials only`;
} catch (e) {
  detail = e.message;
} finally {
  await browser.close();
}
console.log(`CORS ${verdict} in ${((Date.now() - started) / 1000).toFixed(1)}s: ${detail}`);
process.exit(verdict === "PASS" ? 0 : 1);
