// A js-libp2p host that registers at a rendezvous point and discovers a namespace there.
//
// Usage: node rendezvous_client.mjs <point multiaddr with /p2p/> <namespace>
// Prints one JSON line: {"peerId", "addresses", "ttl", "discovered": [{"peerId", "addresses"}]}.
//
// The client is @canvas-js/libp2p-rendezvous, a js-libp2p rendezvous client with the spec's
// message schema compiled by protons (proto3-style): its REGISTER has no `type` field
// (REGISTER = 0) and no `ttl` (0, "the default"); its DISCOVER has no limit and no cookie.
// The package serves the schema under its own protocol id; the spec's is set here.
import "./globals.mjs";
import { noise } from "@chainsafe/libp2p-noise";
import { yamux } from "@chainsafe/libp2p-yamux";
import { RendezvousClient, rendezvousClient } from "@canvas-js/libp2p-rendezvous/client";
import { tcp } from "@libp2p/tcp";
import { multiaddr } from "@multiformats/multiaddr";
import { createLibp2p } from "libp2p";

const [point, namespace] = process.argv.slice(2);
if (!point || !namespace) {
  console.error("usage: node rendezvous_client.mjs <point multiaddr> <namespace>");
  process.exit(2);
}
RendezvousClient.protocol = "/rendezvous/1.0.0";

const timer = setTimeout(() => {
  console.error("timed out");
  process.exit(3);
}, 30_000);

const node = await createLibp2p({
  addresses: { listen: ["/ip4/127.0.0.1/tcp/0"] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: { rendezvous: rendezvousClient({ autoDiscover: false }) },
});
try {
  const result = await node.services.rendezvous.connect(multiaddr(point), async (session) => {
    const { ttl } = await session.register(namespace);
    const peers = await session.discover(namespace);
    return {
      ttl,
      discovered: peers.map((peer) => ({
        peerId: peer.id.toString(),
        addresses: peer.addresses.map((a) => a.multiaddr.toString()),
      })),
    };
  });
  const addresses = node.getMultiaddrs().map((a) => a.decapsulateCode(421).toString());
  console.log(JSON.stringify({ peerId: node.peerId.toString(), addresses, ...result }));
} finally {
  clearTimeout(timer);
  await node.stop();
}
