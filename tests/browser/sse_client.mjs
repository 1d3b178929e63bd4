// A standard SSE client library (the `eventsource` npm package, which follows the
// WHATWG EventSource rules: it reconnects by itself and sends Last-Event-ID) on the
// api's event stream. Prints one JSON line per event, and `{"open": n}` on each
// (re)connection, until killed.
//
//   node tests/browser/sse_client.mjs EVENTS_URL
//
// Run by tests/tests/sse_library.rs.
import EventSource from "eventsource";

const [url] = process.argv.slice(2);
const source = new EventSource(url);
let opens = 0;
const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");
source.onopen = () => print({ open: ++opens });
source.onerror = () => print({ error: true });
for (const event of ["call.created", "call.updated", "reset", "dropped"]) {
  source.addEventListener(event, (e) => print({ event, id: e.lastEventId, data: JSON.parse(e.data) }));
}
