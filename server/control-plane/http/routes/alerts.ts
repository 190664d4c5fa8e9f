import type { ControlPlaneServices } from '../../services.js';
import { principalOf } from '../authentication.js';
import type { RoutesPlugin } from '../plugin.js';
import { Alert, AlertListQuery, AlertPage, AlertParams } from '../schemas.js';

/** Alerts: the list and acknowledgement. */
export const alertRoutes: RoutesPlugin<{ readonly services: ControlPlaneServices }> = async (app, { services }) => {
  const { alerts } = services;

  app.get('/v1/alerts', {
    schema: { querystring: AlertListQuery, response: { 200: AlertPage } }, config: { auth: 'viewer', summary: 'List alerts, newest first' },
  }, async (request) => {
    const { device_id: deviceId, since_ms: sinceMs, acknowledged, limit, cursor } = request.query;
    return alerts.list({
      ...(deviceId === undefined ? {} : { deviceId }), ...(sinceMs === undefined ? {} : { sinceMs }),
      ...(acknowledged === undefined ? {} : { acknowledged }),
      ...(limit === undefined ? {} : { limit }), ...(cursor === undefined ? {} : { cursor }),
    });
  });

  app.post('/v1/alerts/:id/ack', {
    schema: { params: AlertParams, response: { 200: Alert } },
    config: { auth: 'operator', summary: 'Acknowledge an alert (idempotent: the first acknowledgement is kept)' },
  }, async (request) => {
    const { alert } = await alerts.acknowledge({ alertId: request.params.id, actor: principalOf(request).name });
    return alert;
  });
};
