/** As protocol/function-spec.ts's names (kept here: the SDK does not load zod into app bundles). */
const NAME = /^[a-zA-Z_][a-zA-Z0-9_-]{0,63}$/;

/**
 * A secret the daemon keeps (`gantry secret create NAME KEY=VALUE…`), named in a function's
 * options: `app.function({ secrets: [Secret.fromName("openai")] }, …)`. Its keys become
 * environment variables in the function's containers; its values never pass through the app
 * file, the image or the deploy request.
 */
export class Secret {
  private constructor(readonly name: string) {}

  static fromName(name: string): Secret {
    if (typeof name !== "string" || !NAME.test(name)) {
      throw new Error(`Secret.fromName(${JSON.stringify(name)}): a secret name has letters, digits, _ and -, starts with a letter or _, and has at most 64 characters`);
    }
    return new Secret(name);
  }

  /**
   * Modal's `Secret.fromObject` would put values in the app file and the deploy request; gantry
   * keeps them in the daemon only, so this explains what to do instead.
   */
  static fromObject(_values: Record<string, string>): never {
    throw new Error(
      "Secret.fromObject is not supported: gantry keeps secret values out of app files. Create the secret with " +
        "`gantry secret create NAME KEY=VALUE` (or --from-dotenv FILE) and use Secret.fromName(NAME)",
    );
  }
}
