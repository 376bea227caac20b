from flashsale.cli import app

app()
