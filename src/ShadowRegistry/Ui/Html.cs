using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Encodings.Web;

namespace ShadowRegistry.Ui;

/// <summary>Markup the page itself wrote (never anything a client sent): <see cref="Html"/> copies it as it is.</summary>
public readonly record struct Markup(string Value)
{
    public override string ToString() => Value;
}

/// <summary>
/// An HTML page being written. Every value interpolated into <see cref="Add"/> is HTML-encoded (quotes included, so it
/// is safe in double-quoted attributes too) unless it is <see cref="Markup"/>: names, labels, tags and digests come
/// from clients, and a label holding a script must show as text. Only literal parts of the templates are raw.
/// </summary>
public sealed class Html
{
    private readonly StringBuilder text = new(8 * 1024);

    public static string Encode(string? value) => HtmlEncoder.Default.Encode(value ?? "");

    public void Add([InterpolatedStringHandlerArgument("")] Handler handler) => _ = handler;

    public void Add(Markup markup) => text.Append(markup.Value);

    /// <summary>A fragment written the same way, to be added to another page as markup.</summary>
    public static Markup Fragment(Action<Html> write)
    {
        var html = new Html();
        write(html);
        return new Markup(html.ToString());
    }

    public override string ToString() => text.ToString();

    [InterpolatedStringHandler]
    public readonly ref struct Handler
    {
        private readonly StringBuilder text;

        public Handler(int literalLength, int formattedCount, Html html)
        {
            text = html.text;
            _ = literalLength + formattedCount;
        }

        public void AppendLiteral(string value) => text.Append(value);

        public void AppendFormatted(Markup value) => text.Append(value.Value);

        public void AppendFormatted(string? value) => text.Append(Encode(value));

        public void AppendFormatted<T>(T value) =>
            text.Append(Encode(value is IFormattable formattable ? formattable.ToString(null, CultureInfo.InvariantCulture) : value?.ToString()));
    }
}
