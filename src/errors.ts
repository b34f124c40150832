/**
 * Errors the CLI reports as one line, without a stack trace.
 *
 * - {@link UsageError}: the command line or the environment variables are wrong; exit status 2.
 * - {@link EnvironmentError}: the host cannot run the tracer (kernel, permissions, files); exit status 1.
 */

/** A flag or environment variable has a value that cannot be used. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The host lacks something the tracer needs (BTF, privileges, a readable file, ...). */
export class EnvironmentError extends Error {
  override readonly name = 'EnvironmentError';
}
