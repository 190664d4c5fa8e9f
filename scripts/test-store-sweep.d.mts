export declare const storeNamespaceVariable: 'SDC_TEST_STORE_NAMESPACE';
export declare const sweepDeadlineMs: number;
export declare function newStoreNamespace(): string;
export declare function sweepRedisKeys(url: string, namespace: string, options?: { signal?: AbortSignal }): Promise<number>;
export declare function sweepMysqlDatabases(url: string, namespace: string, options?: { signal?: AbortSignal }): Promise<string[]>;
export declare function sweepStores(options: { namespace: string; redisUrl?: string; mysqlUrl?: string; deadlineMs?: number }): Promise<string[]>;
