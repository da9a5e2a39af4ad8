/**
 * Log in with an API key: Ed25519 private key or HMAC secret, signed in this page.  The key
 * is kept in memory only (to log in again after a lost connection), unless the user ticks
 * "remember", which keeps it in this browser's localStorage until logging out.
 */

import { type Credentials, type KeyKind, credentialsProblem } from "../auth";
import { byId } from "../dom";

const STORAGE_KEY = "alatau.credentials";

export class LoginView {
  /** Log in; resolves with the participant's name, rejects with the reason. */
  onLogin: (credentials: Credentials) => Promise<string> = () => Promise.reject(new Error("not ready"));
  onLogout: () => void = () => {};
  private readonly form = byId<HTMLFormElement>("login-form");
  private readonly apiKey = byId<HTMLInputElement>("login-api-key");
  private readonly kind = byId<HTMLSelectElement>("login-kind");
  private readonly secret = byId<HTMLInputElement>("login-secret");
  private readonly remember = byId<HTMLInputElement>("login-remember");
  private readonly message = byId("login-message");
  private readonly who = byId("session-who");
  private readonly logout = byId<HTMLButtonElement>("logout");

  constructor() {
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.submit();
    });
    this.logout.addEventListener("click", () => {
      localStorage.removeItem(STORAGE_KEY);
      this.secret.value = "";
      this.showLoggedOut();
      this.onLogout();
    });
    this.kind.addEventListener("change", () => this.describeSecret());
    this.describeSecret();
  }

  /** Remembered credentials, if the user asked for that before. */
  remembered(): Credentials | null {
    const stored = localStorage.getItem(STORAGE_KEY);
    if (stored === null) {
      return null;
    }
    try {
      const credentials = JSON.parse(stored) as Credentials;
      this.apiKey.value = credentials.apiKey;
      this.kind.value = credentials.kind;
      this.remember.checked = true;
      this.describeSecret();
      return credentialsProblem(credentials) === null ? credentials : null;
    } catch {
      localStorage.removeItem(STORAGE_KEY);
      return null;
    }
  }

  showLoggedIn(participant: string): void {
    document.body.classList.add("logged-in");
    this.who.textContent = `logged in as ${participant}`;
    this.message.textContent = "";
    this.secret.value = "";
  }

  showLoggedOut(reason = ""): void {
    document.body.classList.remove("logged-in");
    this.who.textContent = "";
    this.message.textContent = reason;
  }

  private async submit(): Promise<void> {
    const credentials: Credentials = {
      apiKey: this.apiKey.value.trim(),
      kind: this.kind.value as KeyKind,
      secret: this.kind.value === "ed25519" ? this.secret.value.trim() : this.secret.value,
    };
    const problem = credentialsProblem(credentials);
    if (problem !== null) {
      this.message.textContent = problem;
      return;
    }
    this.message.textContent = "logging in…";
    try {
      const participant = await this.onLogin(credentials);
      if (this.remember.checked) {
        localStorage.setItem(STORAGE_KEY, JSON.stringify(credentials));
      } else {
        localStorage.removeItem(STORAGE_KEY);
      }
      this.showLoggedIn(participant);
    } catch (error) {
      this.message.textContent = String(error);
    }
  }

  private describeSecret(): void {
    const ed25519 = this.kind.value === "ed25519";
    byId("login-secret-label").textContent = ed25519 ? "Ed25519 private key (hex)" : "API secret";
    this.secret.placeholder = ed25519 ? "64 hex characters" : "";
  }
}
