/** The one error shape every route of every dialect answers with. */

export interface ErrorBody {
  /** What went wrong and what to do, for people. */
  error: string;
  /** A stable code from the catalogue (src/errors.ts), for programs. */
  code: string;
}
