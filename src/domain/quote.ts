/** How much of a user's text an error message repeats: enough to recognize, never a flood. */
export const QUOTE_MAX = 200;

/** `text` cut to `max` characters, marked with "…" where cut. */
export function clip(text: string, max = QUOTE_MAX): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
