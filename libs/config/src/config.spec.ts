import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.js';

const problems = (env: Record<string, string>) => {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
};

describe('Redis configuration', () => {
  it('connects to REDIS_URL directly and waits for no replica by default', () => {
    const c = loadConfig({});
    expect(c.redisSentinel).toBeUndefined();
    expect(c.redisWaitReplicas).toBe(0);
  });

  it('with REDIS_SENTINELS, finds the primary through them and waits for one replica unless told otherwise', () => {
    const c = loadConfig({ REDIS_SENTINELS: 'sentinel-a:26379, [::1]:26380', REDIS_SENTINEL_NAME: 'procura' });
    expect(c.redisSentinel).toEqual({ sentinels: [{ host: 'sentinel-a', port: 26379 }, { host: '::1', port: 26380 }], name: 'procura', password: undefined });
    expect(c.redisWaitReplicas).toBe(1);
    expect(loadConfig({ REDIS_SENTINELS: 'a:1', REDIS_WAIT_REPLICAS: '0' }).redisWaitReplicas).toBe(0);
  });

  it('names the variable when a value is wrong', () => {
    expect(problems({ REDIS_SENTINELS: 'sentinel-a' })).toEqual(['REDIS_SENTINELS: "sentinel-a" is not host:port']);
    expect(problems({ REDIS_SENTINELS: ' , ' })).toEqual(['REDIS_SENTINELS: name at least one host:port']);
    expect(problems({ REDIS_WAIT_REPLICAS: '-1' })[0]).toMatch(/^REDIS_WAIT_REPLICAS: /);
  });
});
