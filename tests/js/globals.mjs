// Node 18 (Debian 12's nodejs) lacks two globals js-libp2p 2.x uses: CustomEvent (global from
// Node 19) and crypto (WebCrypto, global from Node 19). Imported first by the client script,
// so it runs before any libp2p module; on Node 20 and later it does nothing.
import { webcrypto } from "node:crypto";

if (globalThis.crypto === undefined) {
  globalThis.crypto = webcrypto;
}
if (globalThis.CustomEvent === undefined) {
  globalThis.CustomEvent = class CustomEvent extends Event {
    constructor(type, options = {}) {
      super(type, options);
      this.detail = options.detail ?? null;
    }
  };
}
