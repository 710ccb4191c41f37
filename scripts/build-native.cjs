// Builds the libtorch addon with node-gyp (run by `npm install` and `npm run build:native`).
// Uses the system's Node headers when present (/usr/include/node on Debian),
// so node-gyp does not try to download them on an offline machine.
'use strict';
const { existsSync } = require('node:fs');
const { execFileSync } = require('node:child_process');
const path = require('node:path');

const root = path.join(__dirname, '..');
execFileSync(process.execPath, [path.join(__dirname, 'find-libtorch.cjs'), 'describe'], { stdio: 'inherit' });
const nodeGyp = require.resolve('node-gyp/bin/node-gyp.js', { paths: [root] });
const args = [nodeGyp, 'rebuild', '-j', 'max'];
const nodedir = process.env.npm_config_nodedir || (existsSync('/usr/include/node/node_api.h') ? '/usr' : null);
if (nodedir) args.push(`--nodedir=${nodedir}`);
execFileSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
