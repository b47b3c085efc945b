#!/usr/bin/env node
// plushlink command entry point: runs the TypeScript CLI (scripts/cli.ts) through tsx.
import { register } from 'tsx/esm/api';

register();
await import('../scripts/cli.ts');
