import { InMemoryAuditStore } from '../../../core/protocol/audit-chain.js';
import { runAuditStoreContract } from './audit-store-contract.js';

// No outbox checks here: an outbox lives in the transaction of the change it records, and memory
// has no transactions. The SQL store's run (sql-audit-store.test.ts) covers them on sql.js and MySQL.
runAuditStoreContract('in memory', { create: async () => new InMemoryAuditStore() });
