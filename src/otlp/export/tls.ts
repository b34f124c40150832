/**
 * TLS credentials for the OTLP/gRPC channel that also work when the endpoint
 * is an IP address.
 *
 * grpc-js (1.14) always names the server in the TLS handshake (SNI) by the
 * endpoint's host, also when it is an IP address; SNI carries host names only
 * (RFC 6066), and Node refuses an IP there ("Setting the TLS ServerName to an
 * IP address is not permitted"), so every export to `https://<IP>:4317` failed.
 * For an IP endpoint, {@link IpEndpointCredentials} connects without a server
 * name and verifies the certificate against the IP (its IP subject alternative
 * names, Node's tls.checkServerIdentity, with the usual chain verification):
 * what a TLS client does for an IP. For a host name the credentials are
 * grpc-js's own, as before.
 */
import { isIP } from 'node:net';
import { connect as tlsConnect, createSecureContext } from 'node:tls';
import type { SecureContext } from 'node:tls';
import type { Socket } from 'node:net';
import { CallCredentials, ChannelCredentials } from '@grpc/grpc-js';
import type { ChannelOptions, experimental } from '@grpc/grpc-js';
import { createSslCredentials } from '@opentelemetry/otlp-grpc-exporter-base';

/**
 * Credentials for a TLS channel to `endpoint` (a URL), trusting `rootCerts`
 * (default: Node's CAs) and presenting the client certificate if given.
 */
export function tlsCredentials(endpoint: string, rootCerts?: Buffer, privateKey?: Buffer, certChain?: Buffer): ChannelCredentials {
  const ip = endpointIp(endpoint);
  if (ip === undefined) return createSslCredentials(rootCerts, privateKey, certChain);
  const context = createSecureContext({ ca: rootCerts, key: privateKey, cert: certChain });
  return new IpEndpointCredentials(ip, context);
}

/** The endpoint's host when it is an IP address (IPv6 without brackets), else undefined. */
export function endpointIp(endpoint: string): string | undefined {
  let host: string;
  try {
    host = new URL(endpoint).hostname;
  } catch {
    return undefined;
  }
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return isIP(host) === 0 ? undefined : host;
}

/** TLS to an IP address: no server name sent, the certificate checked against the IP. */
export class IpEndpointCredentials extends ChannelCredentials {
  private readonly ip: string;
  private readonly context: SecureContext;

  constructor(ip: string, context: SecureContext) {
    super();
    this.ip = ip;
    this.context = context;
  }

  _isSecure(): boolean {
    return true;
  }

  _equals(other: ChannelCredentials): boolean {
    return other === this;
  }

  _createSecureConnector(channelTarget: experimental.GrpcUri, options: ChannelOptions, callCredentials?: CallCredentials): experimental.SecureConnector {
    // an explicit name to verify: grpc-js's own path sends and checks that name
    if (options['grpc.ssl_target_name_override'] !== undefined) {
      return ChannelCredentials.createFromSecureContext(this.context)._createSecureConnector(channelTarget, options, callCredentials);
    }
    const calls = callCredentials ?? CallCredentials.createEmpty();
    const { ip, context } = this;
    return {
      connect(socket: Socket) {
        return new Promise((resolve, reject) => {
          // no servername: Node then checks the certificate against `host`, an IP: its IP SANs
          const tls = tlsConnect({ socket, host: ip, secureContext: context, ALPNProtocols: ['h2'] }, () => {
            if (!tls.authorized) {
              reject(tls.authorizationError);
              return;
            }
            resolve({ socket: tls, secure: true });
          });
          tls.on('error', reject);
        });
      },
      waitForReady: () => Promise.resolve(),
      getCallCredentials: () => calls,
      destroy: () => undefined,
    };
  }
}
