// Verify a Sigstore bundle with a public key using npm's @sigstore/verify (an independent
// implementation). Usage: node sigstore_verify.cjs BUNDLE KEY.pub [ARTIFACT]
// Prints "VERIFIED" and exits 0, or prints the error and exits 1. Key-only: no transparency
// log or timestamp is required (thresholds 0), as for bundles made with a key and no Rekor.
"use strict";
const fs = require("fs");
const crypto = require("crypto");
const { bundleFromJSON } = require("@sigstore/bundle");
const { Verifier, toSignedEntity, toTrustMaterial } = require("@sigstore/verify");

const [bundlePath, keyPath, artifactPath] = process.argv.slice(2);
try {
  const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(bundlePath, "utf8")));
  const key = crypto.createPublicKey(fs.readFileSync(keyPath));
  const hint = crypto
    .createHash("sha256")
    .update(key.export({ type: "spki", format: "der" }))
    .digest("base64");
  // TRUSTED_ROOT: a trusted_root.json for bundles that carry tlog entries or timestamps
  const { TrustedRoot } = require("@sigstore/protobuf-specs");
  const root = process.env.TRUSTED_ROOT
    ? TrustedRoot.fromJSON(JSON.parse(fs.readFileSync(process.env.TRUSTED_ROOT, "utf8")))
    : {
        mediaType: "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        tlogs: [],
        certificateAuthorities: [],
        ctlogs: [],
        timestampAuthorities: [],
      };
  const trust = toTrustMaterial(root, (wanted) => {
    if (wanted !== hint) {
      throw new Error(`bundle key hint ${wanted} is not the key's ${hint}`);
    }
    return { publicKey: key, validFor: () => true };
  });
  const verifier = new Verifier(trust, {
    tlogThreshold: 0,
    ctlogThreshold: 0,
    timestampThreshold: 0,
  });
  const artifact = artifactPath ? fs.readFileSync(artifactPath) : undefined;
  verifier.verify(toSignedEntity(bundle, artifact));
  console.log("VERIFIED");
} catch (err) {
  console.log(`${err.code || err.name}: ${err.message}`);
  process.exit(1);
}
