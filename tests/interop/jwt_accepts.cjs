// Which tokens Node's `jose` and `jsonwebtoken` accept as signed with the
// secret (the signature only). Input on stdin: {"secret": str, "tokens":
// [str]}; output: {"jose": [bool], "jsonwebtoken": [bool]}.
const jose = require("jose");
const jsonwebtoken = require("jsonwebtoken");

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", async () => {
  const { secret, tokens } = JSON.parse(input);
  const key = new TextEncoder().encode(secret);
  const out = { jose: [], jsonwebtoken: [] };
  for (const token of tokens) {
    try {
      await jose.compactVerify(token, key);
      out.jose.push(true);
    } catch (e) {
      out.jose.push(false);
    }
    try {
      jsonwebtoken.verify(token, secret, {
        algorithms: ["HS256"],
        ignoreExpiration: true,
        ignoreNotBefore: true,
      });
      out.jsonwebtoken.push(true);
    } catch (e) {
      out.jsonwebtoken.push(false);
    }
  }
  process.stdout.write(JSON.stringify(out));
});
