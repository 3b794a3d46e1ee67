// The parts of taskcluster-client (which ships no types) that start-worker uses.
declare module 'taskcluster-client' {
  interface ClientOptions {
    rootUrl: string;
    credentials?: { clientId?: string; accessToken?: string; certificate?: string };
    retries?: number;
    timeout?: number;
    agent?: import('node:https').AgentOptions;
  }

  class WorkerManager {
    constructor(options: ClientOptions);
    registerWorker(payload: object): Promise<unknown>;
    reregisterWorker(payload: object): Promise<unknown>;
    removeWorker(workerPoolId: string, workerGroup: string, workerId: string): Promise<unknown>;
    reportWorkerError(workerPoolId: string, payload: object): Promise<unknown>;
  }

  class Secrets {
    constructor(options: ClientOptions);
    get(name: string): Promise<unknown>;
  }

  const taskcluster: { WorkerManager: typeof WorkerManager; Secrets: typeof Secrets };
  export default taskcluster;
}
