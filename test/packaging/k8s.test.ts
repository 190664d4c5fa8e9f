// deploy/k8s/ (issue 15), checked offline: every manifest parses and validates against the
// Kubernetes OpenAPI schemas as compiled by the npm package kubernetes-models (MIT; generated from
// the Kubernetes API's OpenAPI definitions: types, required fields, enums and formats, as a
// kubeconform run would check; unlike `kubeconform -strict` it does not refuse unknown fields,
// and no API server is asked, so `kubectl apply --dry-run=client` is not run: it needs one).
// Then what the issue asks of the deployment: the gateway's autoscaler and disruption budget,
// two control-plane replicas, Services that select the pods and ports that exist, TLS passed
// through to the gateway, probes on /readyz and /healthz, resources, network policies, no real
// secret in a file, and every sdc command line parsed by the CLI's own option parser.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { main } from '../../cli/main.js';
import type { CliIo } from '../../cli/command.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const k8sDir = join(root, 'deploy', 'k8s');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Manifest = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [key: string]: any };

const files = readdirSync(k8sDir).filter((name) => name.endsWith('.yaml')).sort();
const manifests: Array<{ file: string; doc: Manifest }> = files.flatMap((file) => parseAllDocuments(readFileSync(join(k8sDir, file), 'utf8')).map((document) => {
  assert.deepEqual(document.errors, [], `${file}: ${document.errors.map(String).join('; ')}`);
  return { file, doc: document.toJS() as Manifest };
}));

const byKind = (kind: string) => manifests.filter((m) => m.doc.kind === kind).map((m) => m.doc);
const named = (kind: string, name: string): Manifest => {
  const found = byKind(kind).find((d) => d.metadata.name === name);
  assert.ok(found, `${kind} ${name}`);
  return found;
};

/** The kubernetes-models class for a manifest's apiVersion and kind (core group: `v1/Kind`). */
async function modelOf(doc: Pick<Manifest, 'apiVersion' | 'kind'>): Promise<new (data: unknown) => { validate(): void }> {
  const path = doc.apiVersion.includes('/') ? `${doc.apiVersion}/${doc.kind}` : `${doc.apiVersion}/${doc.kind}`;
  const module = await import(`kubernetes-models/${path}`) as Record<string, new (data: unknown) => { validate(): void }>;
  const model = module[doc.kind];
  assert.ok(model, `no schema for ${doc.apiVersion} ${doc.kind}`);
  return model;
}

async function schemaErrors(doc: Manifest): Promise<string | undefined> {
  const Model = await modelOf(doc);
  try {
    new Model(doc).validate();
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

function podSpec(deployment: Manifest) {
  return deployment.spec.template.spec as { containers: Array<Record<string, any>>; initContainers?: Array<Record<string, any>>; volumes?: Array<Record<string, any>>; securityContext?: Record<string, unknown> };
}

describe('deploy/k8s manifests', () => {
  test('every document validates against its Kubernetes schema (and the check refuses a broken one)', async () => {
    assert.ok(manifests.length >= 14, `${manifests.length} documents`);
    for (const { file, doc } of manifests) {
      assert.equal(await schemaErrors(doc), undefined, `${file}: ${doc.kind} ${doc.metadata?.name}`);
      assert.match(doc.metadata.name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, `${file}: name`);
      if (doc.kind !== 'Namespace') assert.equal(doc.metadata.namespace, 'sdc', `${file}: ${doc.kind} ${doc.metadata.name} namespace`);
    }
    const gateway = structuredClone(named('Deployment', 'sdc-gateway'));
    gateway.spec.replicas = 'three';
    assert.match(await schemaErrors(gateway) ?? '', /replicas must be integer/);
    const probe = structuredClone(named('Deployment', 'sdc-control-plane'));
    delete probe.spec.template.spec.containers[0].readinessProbe.httpGet.port;
    assert.match(await schemaErrors(probe) ?? '', /must have required property port/);
    const hpa = structuredClone(named('HorizontalPodAutoscaler', 'sdc-gateway'));
    delete hpa.spec.scaleTargetRef;
    assert.match(await schemaErrors(hpa) ?? '', /scaleTargetRef/);
  });

  test('the gateway: Deployment, HorizontalPodAutoscaler on it, PodDisruptionBudget on its pods, TLS passed through by a layer-4 load balancer', () => {
    const gateway = named('Deployment', 'sdc-gateway');
    const labels = gateway.spec.template.metadata.labels as Record<string, string>;
    const hpa = named('HorizontalPodAutoscaler', 'sdc-gateway');
    assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'sdc-gateway' });
    assert.ok(hpa.spec.minReplicas >= 2 && hpa.spec.maxReplicas > hpa.spec.minReplicas);
    assert.ok(hpa.spec.behavior.scaleDown.stabilizationWindowSeconds >= 600, 'scale-down moves agents: slowly');
    const pdb = named('PodDisruptionBudget', 'sdc-gateway');
    assert.deepEqual(pdb.spec.selector.matchLabels, gateway.spec.selector.matchLabels);
    assert.equal(pdb.spec.maxUnavailable, 1);
    const service = named('Service', 'sdc-gateway');
    assert.equal(service.spec.type, 'LoadBalancer');
    for (const [key, value] of Object.entries(service.spec.selector as Record<string, string>)) assert.equal(labels[key], value, key);
    const port = service.spec.ports[0];
    assert.equal(port.protocol, 'TCP');
    const containerPort = gateway.spec.template.spec.containers[0].ports.find((p: { name: string }) => p.name === port.targetPort);
    assert.equal(containerPort?.containerPort, 8443);
    // Mutual TLS ends in the gateway: nothing in front terminates TLS.
    assert.deepEqual(byKind('Ingress'), []);
    assert.equal(JSON.stringify(service).includes('ssl'), false);
  });

  test('the control plane: two replicas, its disruption budget keeps one, its Services select it', () => {
    const controlPlane = named('Deployment', 'sdc-control-plane');
    assert.equal(controlPlane.spec.replicas, 2);
    assert.equal(named('PodDisruptionBudget', 'sdc-control-plane').spec.minAvailable, 1);
    const labels = controlPlane.spec.template.metadata.labels as Record<string, string>;
    for (const name of ['sdc-api', 'sdc-api-public']) {
      const service = named('Service', name);
      for (const [key, value] of Object.entries(service.spec.selector as Record<string, string>)) assert.equal(labels[key], value, `${name}: ${key}`);
      assert.ok(controlPlane.spec.template.spec.containers[0].ports.some((p: { name: string }) => p.name === service.spec.ports[0].targetPort), name);
    }
    assert.equal(named('Service', 'sdc-api-public').spec.type, 'LoadBalancer');
  });

  test('probes: the control plane on /readyz and /healthz over HTTPS, the gateway on its port; resources on every container', () => {
    const [controlPlane] = podSpec(named('Deployment', 'sdc-control-plane')).containers;
    assert.deepEqual(controlPlane!.readinessProbe.httpGet, { path: '/readyz', port: 'api', scheme: 'HTTPS' });
    assert.deepEqual(controlPlane!.livenessProbe.httpGet, { path: '/healthz', port: 'api', scheme: 'HTTPS' });
    const [gateway] = podSpec(named('Deployment', 'sdc-gateway')).containers;
    assert.deepEqual(gateway!.readinessProbe.tcpSocket, { port: 'devices' });
    assert.deepEqual(gateway!.livenessProbe.tcpSocket, { port: 'devices' });
    for (const deployment of byKind('Deployment')) {
      const spec = podSpec(deployment);
      assert.equal(spec.securityContext?.runAsNonRoot, true, deployment.metadata.name);
      // With fsGroup and the default policy (Always) kubelet makes the 0600 key files 0660 on every
      // mount after the first, and sdc refuses keys that others can read (TRUST_KEY_FILE_PERMISSIONS).
      if (spec.securityContext?.fsGroup !== undefined) {
        assert.equal(spec.securityContext?.fsGroupChangePolicy, 'OnRootMismatch', deployment.metadata.name);
      }
      for (const container of [...spec.containers, ...(spec.initContainers ?? [])]) {
        const where = `${deployment.metadata.name}/${container.name}`;
        assert.ok(container.resources?.requests?.cpu && container.resources?.requests?.memory, `${where} requests`);
        assert.ok(container.resources?.limits?.memory, `${where} memory limit`);
        assert.equal(container.securityContext?.allowPrivilegeEscalation, false, where);
        assert.equal(container.securityContext?.readOnlyRootFilesystem, true, where);
        assert.match(container.image, /^[^:]+:[0-9A-Za-z._-]+$/, `${where}: a pinned tag`);
        assert.doesNotMatch(container.image, /:latest$/, where);
      }
    }
    // Sized for 10,000 agents at the 61.7 KiB per agent `sdc bench connections` measured with 19,000 on one gateway, on an idle gateway of 111 MiB (deploy/k8s/README.md).
    const mebibytes = (quantity: string) => (quantity.endsWith('Gi') ? Number(quantity.slice(0, -2)) * 1024 : Number(quantity.replace(/Mi$/, '')));
    assert.ok(mebibytes(gateway!.resources.requests.memory) >= 111 + (10_000 * 61.7) / 1024, gateway!.resources.requests.memory);
    assert.ok(mebibytes(gateway!.resources.limits.memory) > mebibytes(gateway!.resources.requests.memory));
  });

  test('network policies: ingress denied by default, then the API port to the control plane and the device port to the gateways only', () => {
    const policies = byKind('NetworkPolicy');
    const deny = policies.find((p) => Object.keys(p.spec.podSelector).length === 0);
    assert.ok(deny && deny.spec.ingress === undefined && deny.spec.policyTypes.includes('Ingress'), 'a default deny');
    const allowed = (component: string) => policies.filter((p) => p.spec.podSelector.matchLabels?.['app.kubernetes.io/component'] === component)
      .flatMap((p) => p.spec.ingress.flatMap((rule: { ports: Array<{ port: number }> }) => rule.ports.map((port) => port.port)));
    assert.deepEqual(allowed('control-plane'), [8080]);
    assert.deepEqual(allowed('gateway'), [8443]);
  });

  test('secrets: templates only, no key material or password in a file; the pods read them from mounted files, never from a flag', () => {
    const text = files.map((f) => readFileSync(join(k8sDir, f), 'utf8')).join('\n');
    assert.doesNotMatch(text, /-----BEGIN/);
    for (const secret of byKind('Secret')) {
      assert.equal(secret.data, undefined, secret.metadata.name);
      for (const value of Object.values(secret.stringData as Record<string, string>)) assert.match(value, /^REPLACE/, secret.metadata.name);
    }
    assert.equal(Object.keys(named('Secret', 'sdc-pki').stringData).includes('root-ca.key'), false, 'the root CA key is never online');
    // The serving CA (the ECDSA chain browsers take, decision 0006) travels like the intermediate:
    // in the sdc-pki Secret, copied into the data directory by the control plane's init container.
    assert.deepEqual(Object.keys(named('Secret', 'sdc-pki').stringData).sort(), ['intermediate-ca.key', 'intermediate-ca.pem', 'root-ca.pem', 'serving-ca.key', 'serving-ca.pem']);
    const copy = (podSpec(named('Deployment', 'sdc-control-plane')) as { initContainers?: Array<{ name: string; command?: string[] }> }).initContainers?.find((c) => c.name === 'pki-from-secret');
    assert.match(copy?.command?.join(' ') ?? '', /for f in [^;]*serving-ca\.pem serving-ca\.key; do/);
    for (const deployment of byKind('Deployment')) {
      for (const container of podSpec(deployment).containers) {
        for (const argument of container.args ?? []) assert.doesNotMatch(String(argument), /password|secret|passphrase|token/i, `${deployment.metadata.name}: ${argument}`);
      }
    }
    const [controlPlane] = podSpec(named('Deployment', 'sdc-control-plane')).containers;
    const passwordFile = controlPlane!.env.find((e: { name: string }) => e.name === 'SDC_MYSQL_PASSWORD_FILE')?.value as string;
    const mount = controlPlane!.volumeMounts.find((m: { mountPath: string }) => passwordFile.startsWith(`${m.mountPath}/`));
    const volume = podSpec(named('Deployment', 'sdc-control-plane')).volumes!.find((v) => v.name === mount.name);
    assert.equal(volume?.secret?.secretName, 'sdc-db');
    assert.ok(Object.keys(named('Secret', 'sdc-db').stringData).includes(passwordFile.slice(passwordFile.lastIndexOf('/') + 1)));
    // Redis's password as compose.yaml has it: a file from a Secret (SDC_REDIS_PASSWORD_FILE), in every pod that talks to Redis, never in the URL.
    assert.doesNotMatch(String(named('ConfigMap', 'sdc-config').data.SDC_REDIS_URL), /@/, 'no credentials in the Redis URL');
    for (const name of ['sdc-control-plane', 'sdc-gateway']) {
      const spec = podSpec(named('Deployment', name));
      const [container] = spec.containers;
      const redisFile = container!.env.find((e: { name: string }) => e.name === 'SDC_REDIS_PASSWORD_FILE')?.value as string | undefined;
      assert.ok(redisFile, `${name}: SDC_REDIS_PASSWORD_FILE`);
      const redisMount = container!.volumeMounts.find((m: { mountPath: string }) => redisFile.startsWith(`${m.mountPath}/`));
      assert.equal(spec.volumes!.find((v) => v.name === redisMount?.name)?.secret?.secretName, 'sdc-redis', name);
      assert.ok(Object.keys(named('Secret', 'sdc-redis').stringData).includes(redisFile.slice(redisFile.lastIndexOf('/') + 1)), name);
    }
  });

  test('the gateways fetch the CRL from the API by its in-cluster Service (--crl-url): they have no CRL file (decision 0021)', () => {
    const [gateway] = podSpec(named('Deployment', 'sdc-gateway')).containers;
    const urls = (gateway!.args as string[]).filter((a) => a.startsWith('--crl-url=')).map((a) => new URL(a.slice('--crl-url='.length)));
    assert.equal(urls.length, 1, 'the gateway has --crl-url');
    const url = urls[0]!;
    assert.equal(url.protocol, 'https:');
    assert.equal(url.pathname, '/v1/crl');
    // The Service it names exists, in the gateway's namespace, answers on the URL's port and sends it to the API port.
    const [serviceName, namespace, svc] = url.hostname.split('.');
    assert.equal(svc, 'svc');
    const service = named('Service', serviceName!);
    assert.equal(service.metadata.namespace, namespace);
    const servicePort = service.spec.ports.find((p: { port: number }) => p.port === Number(url.port || 443));
    assert.ok(servicePort, `${serviceName} serves port ${url.port || 443}`);
    const controlPlane = named('Deployment', 'sdc-control-plane');
    const [container] = podSpec(controlPlane).containers;
    const apiPort = container!.ports.find((p: { name: string }) => p.name === servicePort.targetPort);
    assert.equal(apiPort?.containerPort, 8080);
    // The API certificate names the host; the gateway holds the root CA to check it.
    assert.ok((container!.args as string[]).includes(`--server-name=${url.hostname}`), 'the API certificate names the Service');
    const [init] = podSpec(named('Deployment', 'sdc-gateway')).initContainers ?? [];
    assert.match((init!.command as string[]).join(' '), /install -m 644 \/gateway-secret\/root-ca\.pem [^&]*\/data\/pki\//);
    // The network policies let it in: the control plane's API port takes any source.
    const policy = byKind('NetworkPolicy').find((p) => p.spec.podSelector.matchLabels?.['app.kubernetes.io/component'] === 'control-plane');
    assert.ok(policy?.spec.ingress.some((rule: { from?: unknown; ports: Array<{ port: number }> }) => rule.from === undefined && rule.ports.some((port) => port.port === 8080)));
  });

  test('every sdc command line parses with the CLI\'s own option parser ($(VAR) filled from the ConfigMap and the pod name)', async () => {
    const config = named('ConfigMap', 'sdc-config').data as Record<string, string>;
    const values: Record<string, string> = { ...config, POD_NAME: 'sdc-gateway-7d9f8b6c4-abcde' };
    const parses = async (argv: string[]) => {
      let stderr = '';
      const io: CliIo = { stdout: () => undefined, stderr: (t) => { stderr += t; }, readStdin: async () => '', env: {} };
      return { code: await main([...argv, '--help'], io), stderr };
    };
    let checked = 0;
    for (const deployment of byKind('Deployment')) {
      for (const container of podSpec(deployment).containers) {
        const argv = (container.args as string[]).map((a) => a.replace(/\$\(([A-Z_]+)\)/g, (_, name: string) => {
          assert.ok(values[name] !== undefined, `${deployment.metadata.name}: $(${name}) is neither in sdc-config nor the pod name`);
          return values[name]!;
        }));
        const { code, stderr } = await parses(argv);
        assert.equal(code, 0, `${deployment.metadata.name}: sdc ${argv.join(' ')}: ${stderr}`);
        checked += 1;
      }
    }
    assert.equal(checked, 2);
    assert.equal((await parses(['gateway', '--gateway-idd=x'])).code, 2, 'the check can fail');
    // The pod name is a valid gateway id (sdc gateway checks it when it starts).
    assert.match(values.POD_NAME!, /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/);
  });
});
