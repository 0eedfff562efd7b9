import { Init1795409940341 } from './1795409940341-Init.js';

// Listed explicitly so the same array works from TypeScript (tests) and from the build.
export const MIGRATIONS: Function[] = [Init1795409940341];
