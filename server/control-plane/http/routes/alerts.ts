import { SdcError } from '../../../../core/errors/index.js';
import type { ControlPlaneServices } from '../../services.js';
import { principalOf } from '../authentication.js';
import type { RoutesPlugin } from '../plugin.js';
import { Alert, AlertAckBody, AlertListQuery, AlertPage, AlertParams } from '../schemas.js';

/** `state` and the older `acknowledged` say the same; both given and disagreeing is a contradiction. */
function acknowledgedFilter(state: 'open' | 'acked' | undefined, acknowledged: boolean | undefined): boolean | undefined {
  const fromState = state === undefined ? undefined : state === 'acked';
  if (fromState !== undefined && acknowledged !== undefined && fromState !== acknowledged) {
    throw new SdcError('API_VALIDATION', 'state and acknowledged disagree; give one of them');
  }
  return fromState ?? acknowledged;
}

/** Alerts: the list and acknowledgement. */
export const alertRoutes: RoutesPlugin<{ readonly services: ControlPlaneServices }> = async (app, { services }) => {
  const { alerts } = services;

  app.get('/v1/alerts', {
    schema: { querystring: AlertListQuery, response: { 200: AlertPage } }, config: { auth: 'viewer', summary: 'List alerts, newest first' },
  }, async (request) => {
    const { device_id: deviceId, since_ms: sinceMs, state, acknowledged: acknowledgedParam, limit, cursor } = request.query;
    const acknowledged = acknowledgedFilter(state, acknowledgedParam);
    return alerts.list({
      ...(deviceId === undefined ? {} : { deviceId }), ...(sinceMs === undefined ? {} : { sinceMs }),
      ...(acknowledged === undefined ? {} : { acknowledged }),
      ...(limit === undefined ? {} : { limit }), ...(cursor === undefined ? {} : { cursor }),
    });
  });

  app.post('/v1/alerts/:id/ack', {
    schema: { params: AlertParams, body: AlertAckBody, response: { 200: Alert } },
    config: { auth: 'operator', summary: 'Acknowledge an open alert, with an optional note (an acknowledged one: API_ALERT_ALREADY_ACKED)' },
    // The body is optional: a bare POST acknowledges without a note.
    preValidation: async (request) => { if (request.body === undefined || request.body === null) request.body = {}; },
  }, async (request) => {
    const note = request.body?.note;
    return alerts.acknowledge({ alertId: request.params.id, actor: principalOf(request).name, ...(note === undefined ? {} : { note }) });
  });
};
