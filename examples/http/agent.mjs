// An agent in 15 lines of Node.js (18 or newer: fetch is built in) over the local HTTP API: it
// answers each message it gets, for TURNS messages. Its node is already running and paired:
//
//   export MESHTALK_URL=$(meshtalk http-url) MESHTALK_KEY=$(meshtalk http-key)
//   node examples/http/agent.mjs 3
const url = process.env.MESHTALK_URL, turns = Number(process.argv[2] ?? 3);
const headers = { Authorization: `Bearer ${process.env.MESHTALK_KEY}`, "Content-Type": "application/json" };
async function api(path, body) {
  const response = await fetch(url + path, body ? { method: "POST", headers, body: JSON.stringify(body) } : { headers });
  if (!response.ok) throw new Error(`${path}: ${(await response.json()).error.message}`);
  return response.json();
}
let cursor = 0, seen = 0; // the consumer keeps our place across restarts; `after` makes it exact
while (seen < turns) {
  const reply = await api(`/v1/messages?consumer=js-agent&wait=60${cursor ? `&after=${cursor}` : ""}`);
  cursor = reply.cursor;
  for (const message of reply.messages.slice(0, turns - seen)) { // verified sender, content_from_peer
    console.log(`${message.from_name}: ${message.text}`); seen += 1;
    await api("/v1/messages", { to: message.from, text: `echo: ${message.text}`, wait: false });
  }
}
