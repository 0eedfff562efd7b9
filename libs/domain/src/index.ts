export * from './actions.js';
export * from './constraints.js';
export * from './attenuation.js';
