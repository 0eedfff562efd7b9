import { Init1795409940341 } from './1795409940341-Init.js';
import { Guardrails1795500000000 } from './1795500000000-Guardrails.js';
import { Audit1795600000000 } from './1795600000000-Audit.js';
import { AuditSeals1795700000000 } from './1795700000000-AuditSeals.js';

// Listed explicitly so the same array works from TypeScript (tests) and from the build.
export const MIGRATIONS: Function[] = [Init1795409940341, Guardrails1795500000000, Audit1795600000000, AuditSeals1795700000000];
