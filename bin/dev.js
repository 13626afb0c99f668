#!/usr/bin/env -S node --import tsx --no-warnings
// Development launcher: runs the TypeScript sources through oclif without a build.
'use strict'
const {join} = require('node:path')

// oclif finds the package from the folder it is given (not bin/, which has a package.json of its own).
void require('@oclif/core').execute({development: true, dir: join(__dirname, '..')})
