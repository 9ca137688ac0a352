// The size budget of pushlab.js: under 5 KB (5120 bytes) gzipped, as a
// browser fetches it from a server that compresses. Exit 1 past it.
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const BUDGET = 5120;
const file = new URL("./pushlab.js", import.meta.url);
const raw = readFileSync(file);
const gz = gzipSync(raw, { level: 9 }).length;
const verdict = gz < BUDGET ? "PASS" : "FAIL";
console.log(`SIZE ${verdict}: pushlab.js ${raw.length} bytes, ${gz} gzipped (budget < ${BUDGET})`);
process.exit(verdict === "PASS" ? 0 : 1);
