export { createControlPlane, type ControlPlane, type ControlPlaneOptions } from './control-plane.js';
export { openControlPlaneDatabase, migrateControlPlane, controlPlaneAllMigrations } from './database.js';
export type { CommandDetail, CommandView, CreateCommandRequest, Actor } from './commands.js';
export type { DeviceView, EnrollmentAnswer } from './devices.js';
export type { LiveEvent } from './context.js';
