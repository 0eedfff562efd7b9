/** Job names of the maintenance queue (each a repeatable job scheduler of the same name). */
export const MAINTENANCE_JOB = {
  sealAudit: 'seal-audit',
  expireGrants: 'expire-grants',
  purgeTokens: 'purge-tokens',
} as const;
