#!/usr/bin/env node
// Validates JSON documents against a JSON Schema (draft 2020-12) with Ajv, a validator that owes nothing to the
// pydantic models the schemas are generated from (Ajv 8 comes with solhint's dependencies; no install needed).
//
//   node tests/node/validate_json.js SCHEMA.json < documents.jsonl
//       one JSON document per input line; one output line each: "ok" or "invalid: <path> <message>".
//       Exit 2 when the schema itself is not a valid, strict draft 2020-12 schema.
'use strict';
const fs = require('fs');
const Ajv2020 = require('ajv/dist/2020');

function main(schemaPath) {
  const ajv = new Ajv2020({ strict: true, allErrors: false });
  let validate;
  try {
    validate = ajv.compile(JSON.parse(fs.readFileSync(schemaPath, 'utf8')));
  } catch (err) {
    process.stderr.write(`validate_json.js: ${schemaPath} is not a strict draft 2020-12 schema: ${err.message}\n`);
    return 2;
  }
  const out = [];
  for (const line of fs.readFileSync(0, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    if (validate(JSON.parse(line))) out.push('ok');
    else out.push(`invalid: ${validate.errors[0].instancePath || '/'} ${validate.errors[0].message}`);
  }
  process.stdout.write(out.map((l) => l + '\n').join(''));
  return 0;
}

process.exitCode = main(process.argv[2]);
