import { describe, expect, it } from "vitest";

import { credentialsProblem, loginSignature } from "../src/auth";

// The examples of docs/protocol.md ("Login"): demo bob's published key, an HMAC key.
const BOB = "f55796f2bba599cf880b8322587f2916b255d5406819167eb361bbb24412f863";
const TS = 1795657775655;

describe("the login signature", () => {
  it("signs timestamp + api key with Ed25519 as the server checks it", () => {
    expect(loginSignature({ apiKey: "demo-bob-key", kind: "ed25519", secret: BOB }, TS)).toBe(
      "549533c6a1fa3300b6544b875cee4d3bdbee503ea839afb746b051aa7bc5fb83" +
        "f9402d53b2d4c6109d8c9aa6902a4433ce3ada980ddba44f2935f300c343fa07",
    );
  });

  it("signs with HMAC-SHA256 keyed by the secret", () => {
    expect(loginSignature({ apiKey: "carol-key", kind: "hmac", secret: "carol-secret" }, TS)).toBe(
      "11e24a059412963a59b3a5237d5112f363742b0d99963b87d3746c4ffde12b2d",
    );
  });

  it("says what is wrong with credentials that cannot sign", () => {
    expect(credentialsProblem({ apiKey: "", kind: "hmac", secret: "x" })).toMatch(/API key/);
    expect(credentialsProblem({ apiKey: "k", kind: "ed25519", secret: "abc" })).toMatch(/64 hex/);
    expect(credentialsProblem({ apiKey: "k", kind: "hmac", secret: "" })).toMatch(/secret/);
    expect(credentialsProblem({ apiKey: "k", kind: "ed25519", secret: BOB })).toBeNull();
  });
});
