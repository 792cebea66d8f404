/**
 * The nine numeric telemetry features, in the fixed order every model,
 * drift detector and dataset uses.
 */
export const FEATURES = [
  'temperatureC',
  'vibrationHz',
  'powerKw',
  'networkLatencyMs',
  'packetLossPct',
  'defectRatePct',
  'productionSpeedUph',
  'maintenanceScore',
  'errorRatePct',
] as const;

export type Feature = (typeof FEATURES)[number];

export const OPERATION_MODES = ['Active', 'Idle', 'Maintenance'] as const;
export type OperationMode = (typeof OPERATION_MODES)[number];

export const EFFICIENCY_CLASSES = ['Low', 'Medium', 'High'] as const;
export type Efficiency = (typeof EFFICIENCY_CLASSES)[number];

/** Ranges of the public machine-efficiency dataset (the simulator's `seed` profile draws uniformly on these). */
export const SEED_RANGES: Readonly<Record<Feature, readonly [number, number]>> = {
  temperatureC: [30, 90],
  vibrationHz: [0.1, 5.0],
  powerKw: [1.5, 10],
  networkLatencyMs: [1, 50],
  packetLossPct: [0, 5],
  defectRatePct: [0, 10],
  productionSpeedUph: [50, 500],
  maintenanceScore: [0, 1],
  errorRatePct: [0, 15],
};

/**
 * Physically plausible limits enforced by the telemetry contract. Wider than the
 * seed ranges so drifted and faulty (but real) readings still pass; values outside
 * are rejected as `out_of_range`.
 */
export const VALID_LIMITS: Readonly<Record<Feature, readonly [number, number]>> = {
  temperatureC: [-50, 250],
  vibrationHz: [0, 100],
  powerKw: [0, 1000],
  networkLatencyMs: [0, 60_000],
  packetLossPct: [0, 100],
  defectRatePct: [0, 100],
  productionSpeedUph: [0, 10_000],
  maintenanceScore: [0, 1],
  errorRatePct: [0, 100],
};
