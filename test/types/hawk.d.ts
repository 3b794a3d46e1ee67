// The part of hawk (which ships no types) the Taskcluster fake uses.
declare module 'hawk' {
  import type { IncomingMessage } from 'node:http';
  const hawk: {
    server: {
      authenticate(
        req: IncomingMessage,
        credentialsFunc: (id: string) => { id: string; key: string; algorithm: string } | undefined,
        options?: object,
      ): Promise<unknown>;
    };
  };
  export default hawk;
}
