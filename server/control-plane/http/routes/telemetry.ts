import type { ControlPlaneServices } from '../../services.js';
import type { RoutesPlugin } from '../plugin.js';
import { DeviceParams, TelemetryQuery } from '../schemas.js';

/** A device's telemetry samples. */
export const telemetryRoutes: RoutesPlugin<{ readonly services: ControlPlaneServices }> = async (app, { services }) => {
  app.get('/v1/devices/:id/telemetry', {
    schema: { params: DeviceParams, querystring: TelemetryQuery }, config: { auth: 'viewer', summary: 'Telemetry samples, newest first' },
  }, async (request) => {
    const { from_ms: fromMs, to_ms: toMs, limit } = request.query;
    const deviceId = request.params.id;
    // An unknown device is a 404, not an empty page.
    await services.devices.get(deviceId);
    return {
      items: await services.events.telemetry({
        deviceId, ...(fromMs === undefined ? {} : { fromMs }), ...(toMs === undefined ? {} : { toMs }), ...(limit === undefined ? {} : { limit }),
      }),
    };
  });
};
