using System.Globalization;
using System.Text;

namespace ShadowRegistry.Auth;

/// <summary>
/// <c>ShadowRegistry hash-password [--iterations N]</c>: reads a password from standard input (one line; typed
/// without echo, twice, when input is a terminal) and prints its hash for <c>Auth:Users:N:PasswordHash</c>.
/// </summary>
public static class HashPasswordCommand
{
    public const string Usage = """
        Usage: ShadowRegistry hash-password [--iterations N]

        Reads a password from standard input and prints its hash for Auth:Users:<n>:PasswordHash, e.g.
          printf '%s' "$PASSWORD" | ShadowRegistry hash-password
        On a terminal the password is asked for twice without echo. Only the first line of input is used.
        """;

    public static int Run(string[] args, TextReader input, TextWriter output, TextWriter error, bool interactive)
    {
        var iterations = PasswordHash.DefaultIterations;
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] is "-h" or "--help")
            {
                output.WriteLine(Usage);
                return 0;
            }
            if (args[i] == "--iterations" && i + 1 < args.Length
                && int.TryParse(args[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out iterations)
                && iterations is >= PasswordHash.MinIterations and <= PasswordHash.MaxIterations)
            {
                i++;
                continue;
            }
            error.WriteLine($"invalid argument '{args[i]}' (--iterations takes {PasswordHash.MinIterations}..{PasswordHash.MaxIterations})\n\n{Usage}");
            return 2;
        }

        string? password;
        if (interactive)
        {
            password = ReadHidden(error, "Password: ");
            var again = ReadHidden(error, "Again: ");
            if (password != again)
            {
                error.WriteLine("the passwords differ");
                return 1;
            }
        }
        else
        {
            password = input.ReadLine();
        }
        if (string.IsNullOrEmpty(password))
        {
            error.WriteLine("no password given on standard input");
            return 1;
        }
        output.WriteLine(PasswordHash.Hash(password, iterations));
        return 0;
    }

    public static int Run(string[] args) =>
        Run(args, Console.In, Console.Out, Console.Error, !Console.IsInputRedirected);

    private static string ReadHidden(TextWriter prompt, string text)
    {
        prompt.Write(text);
        var password = new StringBuilder();
        while (true)
        {
            var key = Console.ReadKey(intercept: true);
            if (key.Key == ConsoleKey.Enter) break;
            if (key.Key == ConsoleKey.Backspace)
            {
                if (password.Length > 0) password.Length--;
            }
            else if (!char.IsControl(key.KeyChar))
            {
                password.Append(key.KeyChar);
            }
        }
        prompt.WriteLine();
        return password.ToString();
    }
}
