/**
 * The console's routes, in the URL's fragment (`#/devices/lab-01`): the server serves one page at
 * `/`, so any route survives a reload without server-side fallbacks.
 */
export type Route =
  | { readonly view: 'fleet' }
  | { readonly view: 'device'; readonly deviceId: string }
  | { readonly view: 'compose'; readonly deviceId: string | undefined }
  | { readonly view: 'command'; readonly commandId: string }
  | { readonly view: 'audit' }
  | { readonly view: 'research' }
  | { readonly view: 'alerts' }
  | { readonly view: 'approvals' }
  | { readonly view: 'dead-letters'; readonly deviceId: string | undefined }
  | { readonly view: 'releases' }
  | { readonly view: 'artifacts' };

/** Path segments are ids of at most 128 characters; anything longer or odd falls back to the fleet. */
const segmentPattern = /^[A-Za-z0-9_.:-]{1,128}$/;

export function parseRoute(hash: string): Route {
  const [path = '', query = ''] = hash.replace(/^#/, '').split('?', 2);
  const parts = path.split('/').filter((part) => part !== '').map(safeDecode);
  const param = new URLSearchParams(query).get('device') ?? undefined;
  const id = parts[1];
  switch (parts[0]) {
    case 'devices': return id !== undefined && segmentPattern.test(id) ? { view: 'device', deviceId: id } : { view: 'fleet' };
    case 'commands': return id !== undefined && segmentPattern.test(id) ? { view: 'command', commandId: id } : { view: 'fleet' };
    case 'compose': return { view: 'compose', deviceId: param !== undefined && segmentPattern.test(param) ? param : undefined };
    case 'audit': return { view: 'audit' };
    case 'research': return { view: 'research' };
    case 'alerts': return { view: 'alerts' };
    case 'approvals': return { view: 'approvals' };
    case 'dead-letters': return { view: 'dead-letters', deviceId: param !== undefined && segmentPattern.test(param) ? param : undefined };
    case 'releases': return { view: 'releases' };
    case 'artifacts': return { view: 'artifacts' };
    default: return { view: 'fleet' };
  }
}

export function routeHref(route: Route): string {
  switch (route.view) {
    case 'fleet': return '#/fleet';
    case 'device': return `#/devices/${encodeURIComponent(route.deviceId)}`;
    case 'command': return `#/commands/${encodeURIComponent(route.commandId)}`;
    case 'compose': return route.deviceId === undefined ? '#/compose' : `#/compose?device=${encodeURIComponent(route.deviceId)}`;
    case 'audit': return '#/audit';
    case 'research': return '#/research';
    case 'alerts': return '#/alerts';
    case 'approvals': return '#/approvals';
    case 'dead-letters': return route.deviceId === undefined ? '#/dead-letters' : `#/dead-letters?device=${encodeURIComponent(route.deviceId)}`;
    case 'releases': return '#/releases';
    case 'artifacts': return '#/artifacts';
  }
}

function safeDecode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return '';
  }
}
