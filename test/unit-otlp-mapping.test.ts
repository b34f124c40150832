import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SeverityNumber } from '@opentelemetry/api';
import type { HrTime } from '@opentelemetry/api';
import { ROOT_CONTEXT, trace, TraceFlags } from '@opentelemetry/api';
import { errnoName } from '../src/errno.ts';
import { errorType, formatEndpoint } from '../src/otlp/logs/record.ts';
import { nsToHrTime, toLogRecord } from './helpers/sdk-reference.ts';
import { tcpEvent } from './fixtures/tcp-events.ts';

const OBSERVED: HrTime = [1_735_689_601, 5];

const COMMON = {
  'network.transport': 'tcp',
  'process.pid': 4242,
  'process.executable.name': 'psql',
  'process.real_user.id': 1000,
  'thread.id': 4243,
  'process.user.id': 1001,
  'tcptracer.netns.inode': 4026531840,
  'tcptracer.cgroup.id': 7001,
  // host process: no container or pod (undefined values are dropped by the SDK)
  'container.id': undefined,
  'k8s.pod.uid': undefined,
};

describe('toLogRecord', () => {
  it('maps a connect: host is the client, server is the peer, the handshake', () => {
    const record = toLogRecord(tcpEvent({ handshakeNs: 40_123_456 }), OBSERVED);
    assert.equal(record.eventName, 'tcp.connect');
    assert.equal(record.severityNumber, SeverityNumber.INFO);
    assert.equal(record.severityText, 'INFO');
    assert.deepEqual(record.timestamp, [1_735_689_600, 123_456_789]);
    assert.equal(record.observedTimestamp, OBSERVED);
    assert.equal(record.body, 'connect 10.0.0.1:41234 -> 10.0.0.2:5432 (psql pid 4242)');
    assert.deepEqual(record.attributes, {
      ...COMMON,
      'network.type': 'ipv4',
      'network.local.address': '10.0.0.1',
      'network.local.port': 41234,
      'network.peer.address': '10.0.0.2',
      'network.peer.port': 5432,
      'client.address': '10.0.0.1',
      'client.port': 41234,
      'server.address': '10.0.0.2',
      'server.port': 5432,
      'tcptracer.connection.role': 'client',
      'tcptracer.connection.handshake_ns': 40_123_456,
    });
  });

  it('maps an accept: host is the server, client is the peer', () => {
    const record = toLogRecord(tcpEvent({ type: 'accept', role: 'server', saddr: '10.0.0.2', sport: 5432, daddr: '10.0.0.1', dport: 41234 }), OBSERVED);
    assert.equal(record.eventName, 'tcp.accept');
    assert.equal(record.body, 'accept 10.0.0.2:5432 <- 10.0.0.1:41234 (psql pid 4242)');
    const a = record.attributes ?? {};
    assert.equal(a['server.address'], '10.0.0.2');
    assert.equal(a['server.port'], 5432);
    assert.equal(a['client.address'], '10.0.0.1');
    assert.equal(a['client.port'], 41234);
    assert.equal(a['network.local.address'], '10.0.0.2');
    assert.equal(a['network.peer.port'], 41234);
    assert.equal(a['tcptracer.connection.duration_ns'], undefined);
    assert.equal(a['tcptracer.connection.role'], 'server');
    assert.equal(a['tcptracer.connection.handshake_ns'], undefined, 'the server does not time the handshake');
  });

  it('maps a close with the role the probe kept for the socket, duration, bytes, RTT and retransmits', () => {
    const close = tcpEvent({ type: 'close', durationNs: 1_500_000, bytesAcked: 321, bytesReceived: 654_321, handshakeNs: 5, rttUs: 40_321, retransmits: 3 });
    const record = toLogRecord(close, OBSERVED);
    assert.equal(record.eventName, 'tcp.close');
    assert.equal(record.body, 'close 10.0.0.1:41234 -> 10.0.0.2:5432 (psql pid 4242)');
    assert.deepEqual(record.attributes, {
      ...COMMON,
      'network.type': 'ipv4',
      'network.local.address': '10.0.0.1',
      'network.local.port': 41234,
      'network.peer.address': '10.0.0.2',
      'network.peer.port': 5432,
      'client.address': '10.0.0.1',
      'client.port': 41234,
      'server.address': '10.0.0.2',
      'server.port': 5432,
      'tcptracer.connection.role': 'client',
      'tcptracer.connection.duration_ns': 1_500_000,
      'tcptracer.connection.bytes_acked': 321,
      'tcptracer.connection.bytes_received': 654_321,
      'tcptracer.connection.rtt_us': 40_321,
      'tcptracer.connection.retransmits': 3,
    });
    const asServer = toLogRecord({ ...close, role: 'server' }, OBSERVED);
    const s = asServer.attributes ?? {};
    assert.equal(s['tcptracer.connection.role'], 'server');
    assert.deepEqual([s['server.address'], s['server.port'], s['client.address'], s['client.port']], ['10.0.0.1', 41234, '10.0.0.2', 5432]);
    assert.equal(asServer.body, 'close 10.0.0.1:41234 <- 10.0.0.2:5432 (psql pid 4242)');
  });

  it('leaves out what was not measured: a connect without a handshake, a close without an RTT sample; 0 retransmits is a count', () => {
    const connect = toLogRecord(tcpEvent({ handshakeNs: 0 }), OBSERVED).attributes ?? {};
    assert.equal(connect['tcptracer.connection.handshake_ns'], undefined);
    const close = toLogRecord(tcpEvent({ type: 'close', end: 'reset', rttUs: 0, retransmits: 0 }), OBSERVED).attributes ?? {};
    assert.equal(close['tcptracer.connection.rtt_us'], undefined);
    assert.equal(close['tcptracer.connection.retransmits'], 0);
    // health values on events that do not carry them are not exported
    for (const type of ['accept', 'failed'] as const) {
      const a = toLogRecord(tcpEvent({ type, handshakeNs: 1, rttUs: 2, retransmits: 3 }), OBSERVED).attributes ?? {};
      assert.deepEqual([a['tcptracer.connection.handshake_ns'], a['tcptracer.connection.rtt_us'], a['tcptracer.connection.retransmits']], [undefined, undefined, undefined], type);
    }
  });

  it('maps IPv6: network.type ipv6, bare addresses in attributes, brackets in the body', () => {
    const record = toLogRecord(tcpEvent({ ip: 6, saddr: '2001:db8::1', daddr: '::1', sport: 50000, dport: 443, comm: 'curl' }), OBSERVED);
    const a = record.attributes ?? {};
    assert.equal(a['network.type'], 'ipv6');
    assert.equal(a['network.local.address'], '2001:db8::1');
    assert.equal(a['server.address'], '::1');
    assert.equal(record.body, 'connect [2001:db8::1]:50000 -> [::1]:443 (curl pid 4242)');
  });
});

describe('toLogRecord for a failed connect', () => {
  it('is a WARN tcp.connect_failed record with error.type, the connect attributes and a body naming the failure', () => {
    const record = toLogRecord(tcpEvent({ type: 'failed', errno: 111, localIsn: 0, peerIsn: 0 }), OBSERVED);
    assert.equal(record.eventName, 'tcp.connect_failed');
    assert.equal(record.severityNumber, SeverityNumber.WARN);
    assert.equal(record.severityText, 'WARN');
    assert.equal(record.body, 'connect 10.0.0.1:41234 -> 10.0.0.2:5432 failed: connection refused (psql pid 4242)');
    assert.equal(record.context, undefined);
    assert.deepEqual(record.attributes, {
      ...COMMON,
      'network.type': 'ipv4',
      'network.local.address': '10.0.0.1',
      'network.local.port': 41234,
      'network.peer.address': '10.0.0.2',
      'network.peer.port': 5432,
      'client.address': '10.0.0.1',
      'client.port': 41234,
      'server.address': '10.0.0.2',
      'server.port': 5432,
      'tcptracer.connection.role': 'client',
      'error.type': 'connection_refused',
    });
  });

  it('names the failure in the body for every mapping', () => {
    const body = (errno: number): unknown => toLogRecord(tcpEvent({ type: 'failed', errno }), OBSERVED).body;
    assert.match(String(body(110)), /failed: timed out \(psql/);
    assert.match(String(body(113)), /failed: host unreachable \(/);
    assert.match(String(body(101)), /failed: network unreachable \(/);
    assert.match(String(body(0)), /failed: aborted \(/);
    assert.match(String(body(13)), /failed: EACCES \(/);
  });

  it('carries the span context it is given', () => {
    const context = trace.setSpanContext(ROOT_CONTEXT, { traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), traceFlags: TraceFlags.SAMPLED });
    assert.equal(toLogRecord(tcpEvent(), OBSERVED, context).context, context);
  });
});

describe('errorType', () => {
  it('maps the documented errnos, 0 to aborted, others to their name lower-cased', () => {
    assert.equal(errorType(111), 'connection_refused');
    assert.equal(errorType(110), 'timed_out');
    assert.equal(errorType(113), 'host_unreachable');
    assert.equal(errorType(101), 'network_unreachable');
    assert.equal(errorType(104), 'connection_reset');
    assert.equal(errorType(0), 'aborted');
    assert.equal(errorType(13), 'eacces');
    assert.equal(errorType(1), 'eperm');
    assert.equal(errorType(9999), 'errno_9999');
  });
});

describe('errnoName', () => {
  it('names errnos from the platform table, 0 as empty, unknown ones by number', () => {
    assert.equal(errnoName(111), 'ECONNREFUSED');
    assert.equal(errnoName(110), 'ETIMEDOUT');
    assert.equal(errnoName(113), 'EHOSTUNREACH');
    assert.equal(errnoName(101), 'ENETUNREACH');
    assert.equal(errnoName(104), 'ECONNRESET');
    assert.equal(errnoName(13), 'EACCES');
    assert.equal(errnoName(0), '');
    assert.equal(errnoName(9999), 'errno 9999');
  });
});

describe('nsToHrTime', () => {
  it('splits without losing precision', () => {
    assert.deepEqual(nsToHrTime(0n), [0, 0]);
    assert.deepEqual(nsToHrTime(1_735_689_600_999_999_999n), [1_735_689_600, 999_999_999]);
    assert.deepEqual(nsToHrTime(2n ** 63n - 1n), [9_223_372_036, 854_775_807]);
  });
});

describe('formatEndpoint', () => {
  it('brackets IPv6 only', () => {
    assert.equal(formatEndpoint(4, '127.0.0.1', 80), '127.0.0.1:80');
    assert.equal(formatEndpoint(6, 'fe80::1', 22), '[fe80::1]:22');
  });
});

describe('identity on records', () => {
  it('carries container.id and k8s.pod.uid when the cgroup named them', () => {
    const containerId = 'c'.repeat(64);
    const podUid = '1b4e28ba-2fa1-11d2-883f-0016d3cca427';
    for (const type of ['connect', 'accept', 'close', 'failed'] as const) {
      const record = toLogRecord(tcpEvent({ type, containerId, podUid }), OBSERVED);
      assert.ok(record.attributes);
      assert.equal(record.attributes['container.id'], containerId, type);
      assert.equal(record.attributes['k8s.pod.uid'], podUid, type);
    }
  });
});
