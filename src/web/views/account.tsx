/**
 * The account: paste a key (kept in this tab's sessionStorage only), then see the balance
 * and the ledger. A key the node does not know says so, and is not kept.
 */

import { useState } from 'preact/hooks';
import type { AccountInfo, LedgerPage } from '../../wire/accounts.js';
import { ApiError, get, session } from '../api.js';
import { time } from '../format.js';
import { usePoll } from '../hooks.js';
import { Empty, ErrorState, Fields, Id, Loading, Table } from '../parts.js';

export function AccountView({ onKey }: { onKey: () => void }) {
  const [key, setKey] = useState(session.key());
  const [error, setError] = useState<ApiError | undefined>();
  const [checking, setChecking] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    const value = (new FormData(e.target as HTMLFormElement).get('key') as string | null)?.trim() ?? '';
    if (!value) return setError(new ApiError(400, 'INVALID_INPUT', 'paste a key first (gridx account create prints one)'));
    setChecking(true);
    session.setKey(value);
    try {
      await get<AccountInfo>('/api/accounts/me');
      setError(undefined);
      setKey(value);
      onKey();
    } catch (err) {
      session.forget();
      setError(err as ApiError);
    } finally {
      setChecking(false);
    }
  };
  const forget = () => {
    session.forget();
    setKey(undefined);
    onKey();
  };

  if (!key) {
    return (
      <section>
        <h2>Account</h2>
        <form class="form" onSubmit={submit}>
          <label>
            Account key
            <input name="key" type="password" autocomplete="off" placeholder="gx_…" required aria-describedby="key-help" />
          </label>
          <p id="key-help" class="hint">
            Kept in this tab only (session storage), sent to this node alone, forgotten when the tab closes. <code>gridx account create</code> prints one.
          </p>
          <button type="submit" disabled={checking}>
            {checking ? 'Checking…' : 'Use this key'}
          </button>
        </form>
        {error && <ErrorState error={error} title={error.status === 401 ? 'Key not accepted' : undefined} />}
      </section>
    );
  }
  return <AccountDetails onForget={forget} />;
}

function AccountDetails({ onForget }: { onForget: () => void }) {
  const account = usePoll((signal) => get<AccountInfo>('/api/accounts/me', signal), 5_000);
  const ledger = usePoll((signal) => get<LedgerPage>('/api/accounts/me/ledger?limit=50', signal), 5_000);
  return (
    <section>
      <div class="toolbar">
        <h2>Account</h2>
        <button type="button" onClick={onForget}>
          Forget key
        </button>
      </div>
      {account.error && <ErrorState error={account.error} title={account.error.status === 401 ? 'Key not accepted' : undefined} />}
      {!account.data && !account.error && <Loading />}
      {account.data && (
        <Fields
          rows={[
            [
              'Account',
              <>
                {account.data.name} <Id id={account.data.id} />
              </>,
            ],
            ['Kind', account.data.kind],
            ['Balance', <span class="balance">{account.data.balance} credits</span>],
            ['Chain address', account.data.address && <code>{account.data.address}</code>],
          ]}
        />
      )}
      <h3>Ledger</h3>
      {ledger.error && !account.error && <ErrorState error={ledger.error} />}
      {ledger.data && ledger.data.entries.length === 0 && <Empty>No entries yet: credits move when jobs are paid for, deposited or withdrawn.</Empty>}
      {ledger.data && ledger.data.entries.length > 0 && (
        <Table label="ledger" head={['When', 'Kind', 'Amount', 'Counterparty', 'Task', 'Memo']}>
          {ledger.data.entries.map((e) => (
            <tr key={e.seq}>
              <td>{time(e.at)}</td>
              <td>{e.kind}</td>
              <td class={e.amount.startsWith('-') ? 'debit' : 'credit'}>{e.amount}</td>
              <td>
                <Id id={e.counterparty} keep={12} />
              </td>
              <td>{e.task_id ? <a href={`#/jobs/${encodeURIComponent(e.task_id)}`}><Id id={e.task_id} keep={12} /></a> : '—'}</td>
              <td>{e.memo ?? ''}</td>
            </tr>
          ))}
        </Table>
      )}
    </section>
  );
}
