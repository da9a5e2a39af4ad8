/**
 * The `auth.login` signature, made in the browser: the key never leaves it.
 *
 * The message is the ASCII string `${timestamp}${apiKey}` (docs/protocol.md, "Login"),
 * signed with an Ed25519 private key (64 hex characters: the 32 raw bytes, as `alatau
 * serve` prints them) or HMAC-SHA256 keyed with the UTF-8 bytes of an API secret; the
 * signature goes out in hex.
 *
 * @noble/ed25519 and @noble/hashes (audited, dependency-free) rather than WebCrypto:
 * `crypto.subtle` exists only in secure contexts, so WebCrypto would refuse to log in on a
 * page opened over plain http from another machine's address, and its Ed25519 is newer
 * than some browsers still in use.
 */

import * as ed from "@noble/ed25519";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256, sha512 } from "@noble/hashes/sha2.js";
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js";

ed.hashes.sha512 = sha512;

export type KeyKind = "ed25519" | "hmac";

export interface Credentials {
  apiKey: string;
  kind: KeyKind;
  /** The Ed25519 private key (hex) or the HMAC secret. */
  secret: string;
}

const HEX64 = /^[0-9a-fA-F]{64}$/;

/** Why these credentials cannot sign, or null when they can. */
export function credentialsProblem(credentials: Credentials): string | null {
  if (credentials.apiKey.trim() === "") {
    return "enter the API key";
  }
  if (credentials.kind === "ed25519" && !HEX64.test(credentials.secret)) {
    return "an Ed25519 private key is 64 hex characters (the 32 raw bytes)";
  }
  if (credentials.kind === "hmac" && credentials.secret.length === 0) {
    return "enter the API secret";
  }
  return null;
}

/** The hex signature of `${timestamp}${apiKey}` with these credentials. */
export function loginSignature(credentials: Credentials, timestamp: number): string {
  const message = new TextEncoder().encode(`${timestamp}${credentials.apiKey}`);
  if (credentials.kind === "ed25519") {
    return bytesToHex(ed.sign(message, hexToBytes(credentials.secret)));
  }
  return bytesToHex(hmac(sha256, new TextEncoder().encode(credentials.secret), message));
}
