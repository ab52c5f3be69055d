"""Epidemic services: direct reporting of notifiable diseases (直报), fever-clinic visit counts and the
live epidemic dashboard (疫情实时查)."""
